#define CAF_SUITE apps.generation_output

// What `generate --connect` prints of a generate_result that came over the
// network: tensors whose shapes do not fit their bytes (a buggy or hostile
// router) print as empty arrays, never read past their bytes or overflow.

#include "apps/generation_output.hpp"

#include <limits>

#include "base/error.hpp"
#include "caf/binary_deserializer.hpp"
#include "model/json.hpp"
#include "net/wire_tensor.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

std::vector<char> from_hex(const std::string& hex) {
  std::vector<char> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

generate_request asking_for_everything() {
  generate_request req;
  req.prompt = {1, 2, 3};
  req.return_all_logits = true;
  req.return_routing = true;
  return req;
}

/// The printed JSON, parsed back.
json::value printed(const generate_result& res) {
  auto doc = json::parse(generation_to_json(asking_for_everything(), res),
                         "output");
  if (!doc)
    CAF_FAIL("generation_to_json printed invalid JSON: "
             << describe(doc.error()));
  return *doc;
}

/// The field `key` of the printed JSON, compact.
std::string field(const generate_result& res, const char* key) {
  return json::dump(printed(res)[key]);
}

} // namespace

CAF_TEST(a result from the fuzzer whose routing shape overflows prints) {
  // fuzz_wire's input (less its first byte, which picked this boundary): a
  // routing tensor whose element count overflowed int64 in wire_tensor::numel
  // (UBSan: signed integer overflow).
  auto bytes = from_hex(
    "0300000005000000060000000702030000000500000006000000070200000005"
    "0000000902066c656e67746803656f7300010000000000000006180000003f00"
    "00a0bf00004040000000006f12833a0000f0c000020000000000000002000000"
    "000000000318000000003f0000a0bf00004040000000006f12833a0000f0c004"
    "0300000000000000020000000100001400000000020000000000000002200000"
    "000002000000010000000300000004000000050000000700000006000000066c"
    "656e67746802066c656e6774680473746f70010100000005bf00000002000000"
    "05bf00000000000009bfc00000000000000000000200000000000000053fd000"
    "00000000003ff800000000000000000000000000100000000000000000020000"
    "0000000001000000000000000000000000000000000000000000000000");
  generate_result res;
  caf::binary_deserializer src{nullptr, bytes};
  CAF_REQUIRE(!src(res));
  CAF_CHECK_EQUAL(field(res, "router_topk"), "[]");
  CAF_CHECK_EQUAL(field(res, "new_tokens"), "[5,6,7]");
}

CAF_TEST(tensors whose shapes do not fit their bytes print as empty arrays) {
  generate_result res;
  std::vector<float> two{1.5f, -2.0f};
  res.all_logits = pack_f32(two.data(), {1, 2});
  std::vector<int32_t> ids{4, 5, 6, 7};
  res.routing = pack_i32(ids.data(), {1, 2, 2});
  CAF_CHECK_EQUAL(field(res, "all_logits"), "[[1.5,-2.0]]");
  CAF_CHECK_EQUAL(field(res, "router_topk"), "[[[4,5],[6,7]]]");
  // 2^62 elements of 4 bytes: the byte count wraps to 0 in 64 bits.
  res.routing.shape = {int64_t{1} << 62};
  res.routing.bytes.clear();
  CAF_CHECK_EQUAL(field(res, "router_topk"), "[]");
  // A negative dimension, and too few bytes.
  res.routing.shape = {2, -2};
  CAF_CHECK_EQUAL(field(res, "router_topk"), "[]");
  res.routing = pack_i32(ids.data(), {1, 2, 2});
  res.routing.bytes.pop_back();
  CAF_CHECK_EQUAL(field(res, "router_topk"), "[]");
  // Floats where int32 ids belong.
  res.routing = pack_f32(two.data(), {2});
  CAF_CHECK_EQUAL(field(res, "router_topk"), "[]");
  CAF_CHECK_EQUAL(field(res, "all_logits"), "[[1.5,-2.0]]");
  // Found by fuzz.wire: no elements, so no bytes, under a huge outer
  // dimension; nesting it took minutes and gigabytes.
  res.routing.shape = {int64_t{1} << 40, 0};
  res.routing.bytes.clear();
  CAF_CHECK_EQUAL(field(res, "router_topk"), "[]");
}
