#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "caf/error.hpp"
#include "caf/expected.hpp"

#include "model/dtype.hpp"

namespace volt {

class mapped_file;

/// One tensor of a safetensors file: where its bytes lie in the mapping, and
/// what they are.
struct tensor_info {
  /// Tensor name, e.g. "model.layers.0.self_attn.q_proj.weight".
  std::string name;
  /// Element type.
  dtype type = dtype::f32;
  /// Dimensions, outermost first (row-major).
  std::vector<int64_t> shape;
  /// First byte inside the mapped file; valid while its `safetensors_file`
  /// lives.
  const uint8_t* data = nullptr;
  /// Where `data` begins in the file (loaders that read the file rather than
  /// touch the mapping).
  size_t offset = 0;
  /// Number of bytes (numel() * dtype_size(type)).
  size_t nbytes = 0;
  /// Path of the file holding the tensor, for error messages.
  std::string file;

  /// Product of the dimensions (1 for a scalar).
  int64_t numel() const;
};

/// Renders a shape as "[64, 32]".
std::string to_string(const std::vector<int64_t>& shape);

/// One memory-mapped .safetensors file (read-only mmap, kept alive by
/// shared_ptr). Opening validates the whole header, so every `tensor_info`
/// afterwards points inside the file.
class safetensors_file {
public:
  /// Maps and validates `path`; errors are one line naming the file (and
  /// tensor).
  static caf::expected<std::shared_ptr<safetensors_file>>
  open(const std::string& path);

  /// Tensors in header order.
  const std::vector<tensor_info>& tensors() const {
    return tensors_;
  }

  /// Returns the tensor `name`, or nullptr.
  const tensor_info* find(const std::string& name) const;

  /// Path as given to `open`.
  const std::string& path() const;

private:
  safetensors_file() = default;

  std::shared_ptr<mapped_file> map_;
  std::vector<tensor_info> tensors_;
  std::unordered_map<std::string, size_t> by_name_;
};

/// Checks a whole safetensors image of `size` bytes at `bytes` (a file's
/// content, as `safetensors_file::open` does for a file) and lists its tensors
/// in header order, each pointing into `bytes`; `path` names the file in
/// errors.
caf::expected<std::vector<tensor_info>>
parse_safetensors(const uint8_t* bytes, size_t size, const std::string& path);

/// One tensor for `write_safetensors`: little-endian element bytes in row-major
/// order.
struct tensor_to_write {
  std::string name;
  dtype type = dtype::f32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

/// Writes a safetensors file (used by tests and by a future `convert` command):
/// tensors in the given order, `{"format": "pt"}` metadata, header padded with
/// spaces to a multiple of 8 bytes as Hugging Face does. Writes through a
/// temporary file and a rename.
caf::error write_safetensors(const std::string& path,
                             const std::vector<tensor_to_write>& tensors);

/// The part of that file before the tensor bytes: the 8-byte little-endian
/// header length, then the padded JSON header. `path` names the file in
/// errors.
caf::expected<std::string>
safetensors_header(const std::string& path,
                   const std::vector<tensor_to_write>& tensors);

} // namespace volt
