#define CAF_SUITE net.wire_tensor

// Tensors as they cross node boundaries: element counts of any shape a peer
// may send are defined (no int64 overflow), and check_wire_tensor refuses
// shapes that do not fit their bytes.

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
