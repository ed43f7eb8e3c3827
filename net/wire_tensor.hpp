#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "caf/expected.hpp"
#include "caf/meta/type_name.hpp"
#include "model/dtype.hpp"

namespace volt {

/// A tensor as it travels in CAF messages: dtype, shape and raw little-endian
/// bytes. CAF serialises a byte vector as one block (10+ GB/s) but a float
/// vector element by element (0.1-0.4 GB/s), hence bytes (DESIGN.md §4).
struct wire_tensor {
  uint8_t type = static_cast<uint8_t>(dtype::f32); // a volt::dtype
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  /// Number of elements the shape describes; -1 for a negative dimension or
  /// a count beyond int64 (shapes from other nodes may be anything).
  int64_t numel() const;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, wire_tensor& x) {
  return f(caf::meta::type_name("volt.wire_tensor"), x.type, x.shape, x.bytes);
}

/// Packs `n` floats with the given shape.
wire_tensor pack_f32(const float* data, std::vector<int64_t> shape);

/// Packs `n` int32 values with the given shape.
wire_tensor pack_i32(const int32_t* data, std::vector<int64_t> shape);

/// Checks that `t` holds dtype `type` with the given shape (a -1 entry matches
/// any size) and that its byte count fits; `what` names the field in the error.
caf::error check_wire_tensor(const wire_tensor& t, dtype type,
                             const std::vector<int64_t>& shape,
                             const std::string& what);

/// An f32 tensor of `shape` whose payload the caller writes through
/// f32_data (zeroed until then): packing without a copy of the values.
wire_tensor make_f32(std::vector<int64_t> shape);

/// The payload of a checked f32 tensor, in place: the byte vector's storage
/// comes from operator new, aligned for floats. Large batches cross a node
/// link as tens of MiB; each copy saved is a pass over them.
float* f32_data(wire_tensor& t);
const float* f32_data(const wire_tensor& t);

/// Copies the payload of a checked f32 tensor into `out`.
void unpack_f32(const wire_tensor& t, std::vector<float>& out);

/// Copies the payload of a checked i32 tensor into `out`.
void unpack_i32(const wire_tensor& t, std::vector<int32_t>& out);

} // namespace volt
