#include "net/wire_tensor.hpp"

#include <cstring>
#include <limits>

#include "base/error.hpp"

namespace volt {

namespace {

template <class T>
wire_tensor pack(dtype type, const T* data, std::vector<int64_t> shape) {
  wire_tensor result;
  result.type = static_cast<uint8_t>(type);
  result.shape = std::move(shape);
  auto n = static_cast<size_t>(result.numel());
  result.bytes.resize(n * sizeof(T));
  if (n > 0 && data != nullptr)
    std::memcpy(result.bytes.data(), data, result.bytes.size());
  return result;
}

template <class T>
void unpack(const wire_tensor& t, std::vector<T>& out) {
  out.resize(t.bytes.size() / sizeof(T));
  if (!out.empty())
    std::memcpy(out.data(), t.bytes.data(), t.bytes.size());
}

std::string render_shape(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0)
      out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

} // namespace

int64_t wire_tensor::numel() const {
  // Shapes come from other nodes: a negative dimension or a count beyond
  // int64 is no count, not undefined behaviour.
  int64_t n = 1;
  for (auto d : shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n))
      return -1;
  return n;
}

wire_tensor make_f32(std::vector<int64_t> shape) {
  return pack<float>(dtype::f32, nullptr, std::move(shape));
}

float* f32_data(wire_tensor& t) {
  return reinterpret_cast<float*>(t.bytes.data());
}

const float* f32_data(const wire_tensor& t) {
  return reinterpret_cast<const float*>(t.bytes.data());
}

wire_tensor pack_f32(const float* data, std::vector<int64_t> shape) {
  return pack(dtype::f32, data, std::move(shape));
}

wire_tensor pack_i32(const int32_t* data, std::vector<int64_t> shape) {
  return pack(dtype::i32, data, std::move(shape));
}

caf::error check_wire_tensor(const wire_tensor& t, dtype type,
                             const std::vector<int64_t>& shape,
                             const std::string& what) {
  auto fail = [&](const std::string& why) {
    return make_volt_error(volt_errc::invalid_request, what + ": " + why);
  };
  if (t.type != static_cast<uint8_t>(type))
    return fail("expected dtype " + to_string(type) + ", got code "
                + std::to_string(static_cast<int>(t.type)));
  if (t.shape.size() != shape.size())
    return fail("expected shape " + render_shape(shape) + ", got "
                + render_shape(t.shape));
  // Bytes from the network: guard the element count against overflow before
  // comparing.
  uint64_t numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (t.shape[i] < 0 || (shape[i] >= 0 && t.shape[i] != shape[i]))
      return fail("expected shape " + render_shape(shape) + ", got "
                  + render_shape(t.shape));
    auto d = static_cast<uint64_t>(t.shape[i]);
    if (d != 0
        && numel > std::numeric_limits<uint32_t>::max() * uint64_t{64} / d)
      return fail("shape " + render_shape(t.shape) + " is too large");
    numel *= d;
  }
  if (numel * dtype_size(type) != t.bytes.size())
    return fail("shape " + render_shape(t.shape) + " needs "
                + std::to_string(numel * dtype_size(type)) + " bytes, got "
                + std::to_string(t.bytes.size()));
  return caf::none;
}

void unpack_f32(const wire_tensor& t, std::vector<float>& out) {
  unpack(t, out);
}

void unpack_i32(const wire_tensor& t, std::vector<int32_t>& out) {
  unpack(t, out);
}

} // namespace volt
