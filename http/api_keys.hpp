#pragma once

// API keys of the HTTP API ([http] api_keys_file): requests carry
// `Authorization: Bearer <key>`; a missing or wrong key gets 401 in OpenAI's
// error format.

#include <chrono>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "base/digest.hpp"
#include "caf/expected.hpp"
#include "http/api_error.hpp"

namespace volt::http {

/// Shortest and longest key accepted.
constexpr size_t min_api_key_size = 16;
constexpr size_t max_api_key_size = 256;

/// Parses the text of a key file: one key per line, surrounding whitespace
/// removed; blank lines and lines starting with '#' are skipped. A key has
/// 16 to 256 characters of letters, digits and -._~+/= (RFC 6750's token
/// characters). Returns the keys' SHA-256 digests (the keys themselves are
/// not kept); errors are one line naming `path` and the line, never a key.
caf::expected<std::vector<digest256>> parse_api_keys(const std::string& text,
                                                     const std::string& path);

/// The keys of one file, read again when the file changes: before a check,
/// at most once a second, the file's size, modification time and inode are
/// compared with what was read. A change that does not parse (or a file
/// gone) keeps the keys in use and logs why once. Thread-safe.
class api_keys {
public:
  /// Reads `path`; errors name the file (and line) and [http] api_keys_file.
  static caf::expected<std::shared_ptr<api_keys>> load(std::string path);

  /// Whether `key` is one of the keys, in time that does not depend on the
  /// keys' contents or on which key matches (every digest is compared).
  bool accepts(const std::string& key);

  /// How many keys are in use.
  size_t size();

private:
  struct file_state {
    off_t size = -1;
    timespec mtime{};
    ino_t inode = 0;

    bool operator==(const file_state& y) const;
  };

  explicit api_keys(std::string path) : path_(std::move(path)) {}

  /// Reads the file again if it changed since the last read.
  void refresh();

  static std::optional<file_state> stat_file(const std::string& path);

  std::mutex mtx_;
  std::string path_;
  std::vector<digest256> digests_;
  file_state seen_;
  std::chrono::steady_clock::time_point last_check_;
};

/// The refusal of a request to a protected route, or nothing when its
/// `Authorization` header (`authorization`, empty when absent) carries an
/// accepted key as `Bearer <key>`.
std::optional<api_error> authorize(api_keys& keys,
                                   const std::string& authorization);

} // namespace volt::http
