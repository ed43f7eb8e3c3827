#define CAF_SUITE net.wire_tensor

// Tensors as they cross node boundaries: element counts of any shape a peer
// may send are defined (no int64 overflow), and check_wire_tensor refuses
// shapes that do not fit their bytes; a tensor written in place (make_f32,
// f32_data) holds what pack_f32 would.

#include "net/wire_tensor.hpp"

#include "base/error.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

wire_tensor of_shape(std::vector<int64_t> shape) {
  wire_tensor t;
  t.shape = std::move(shape);
  return t;
}

} // namespace

CAF_TEST(numel counts elements and gives -1 for shapes no tensor has) {
  CAF_CHECK_EQUAL(of_shape({}).numel(), 1);
  CAF_CHECK_EQUAL(of_shape({2, 3}).numel(), 6);
  CAF_CHECK_EQUAL(of_shape({0, int64_t{1} << 62, 4}).numel(), 0);
  CAF_CHECK_EQUAL(of_shape({2, -3}).numel(), -1);
  CAF_CHECK_EQUAL(of_shape({-1, -1}).numel(), -1);
  // fuzz_wire found products beyond int64 in a generate_result's routing.
  CAF_CHECK_EQUAL(of_shape({int64_t{1} << 62, 4}).numel(), -1);
  CAF_CHECK_EQUAL(of_shape({216172782113783808, 144115188092633108}).numel(),
                  -1);
}

CAF_TEST(check_wire_tensor refuses shapes that do not fit the bytes) {
  std::vector<float> six(6, 1.0f);
  auto t = pack_f32(six.data(), {2, 3});
  CAF_CHECK(!check_wire_tensor(t, dtype::f32, {2, 3}, "t"));
  CAF_CHECK(!check_wire_tensor(t, dtype::f32, {-1, 3}, "t"));
  CAF_CHECK(check_wire_tensor(t, dtype::i32, {2, 3}, "t")
            == volt_errc::invalid_request);
  auto err = check_wire_tensor(t, dtype::f32, {3, 2}, "rows");
  CAF_CHECK_EQUAL(describe(err), "rows: expected shape [3, 2], got [2, 3]");
  t.shape = {int64_t{1} << 62, 4};
  CAF_CHECK_EQUAL(describe(check_wire_tensor(t, dtype::f32, {-1, -1}, "t")),
                  "t: shape [4611686018427387904, 4] is too large");
  t.shape = {2, -3};
  CAF_CHECK(check_wire_tensor(t, dtype::f32, {-1, -1}, "t")
            == volt_errc::invalid_request);
}

CAF_TEST(an f32 tensor written in place reads back as packed) {
  auto t = make_f32({2, 3});
  CAF_REQUIRE(!check_wire_tensor(t, dtype::f32, {2, 3}, "t"));
  std::vector<float> got;
  unpack_f32(t, got);
  CAF_CHECK_EQUAL(got, std::vector<float>(6, 0.0f));
  for (int i = 0; i < 6; ++i)
    f32_data(t)[i] = 0.5f * static_cast<float>(i) - 1.0f;
  std::vector<float> want{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
  CAF_CHECK(t.bytes == pack_f32(want.data(), {2, 3}).bytes);
  const auto& read = t;
  CAF_CHECK_EQUAL(f32_data(read)[5], 1.5f);
  CAF_CHECK(make_f32({0, 4}).bytes.empty());
}
