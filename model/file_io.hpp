#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "caf/error.hpp"
#include "caf/expected.hpp"

namespace volt {

/// Returns "<dir>/<name>" without doubling a trailing slash of `dir`.
std::string join_path(const std::string& dir, const std::string& name);

/// Reads the whole regular file `path`; errors name the file (missing, a
/// directory, unreadable).
caf::expected<std::string> read_text_file(const std::string& path);

/// A range of bytes to write.
struct byte_span {
  const void* data;
  size_t size;
};

/// Writes `pieces` one after another to `path` through a temporary file in the
/// same folder and a rename, so a reader never sees a half-written file.
caf::error write_file_atomically(const std::string& path,
                                 const std::vector<byte_span>& pieces);

/// A read-only memory map of a whole regular file; unmapped on destruction.
/// While mapped, the file is watched (model/mapping_guard.hpp): changed on
/// disk, it is reported by check_mapped_files, truncated mid-read, it ends the
/// process with a line naming it.
class mapped_file {
public:
  /// Maps `path`; errors name the file (missing, a directory, empty, mmap
  /// failure).
  static caf::expected<std::shared_ptr<mapped_file>>
  open(const std::string& path);

  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  ~mapped_file();

  /// First byte of the mapping.
  const uint8_t* data() const {
    return data_;
  }

  /// Length of the file in bytes.
  size_t size() const {
    return size_;
  }

  /// Path as given to `open`.
  const std::string& path() const {
    return path_;
  }

private:
  mapped_file(std::string path, const uint8_t* data, size_t size, int fd)
    : path_(std::move(path)), data_(data), size_(size), fd_(fd) {}

  std::string path_;
  const uint8_t* data_;
  size_t size_;
  /// Open while mapped, for model/mapping_guard.hpp's checks.
  int fd_;
};

} // namespace volt
