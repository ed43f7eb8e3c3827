#pragma once

// SHA-256 and HMAC-SHA256 from OpenSSL's libcrypto, and the helpers that
// compare and print digests. Used where Volt authenticates (Redis records,
// API keys) or identifies (checkpoint fingerprints) something.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace volt {

/// A SHA-256 digest.
using digest256 = std::array<uint8_t, 32>;

/// Incremental SHA-256.
class sha256 {
public:
  sha256();
  ~sha256();
  sha256(sha256&&) noexcept;
  sha256& operator=(sha256&&) noexcept;

  /// Feeds `n` bytes.
  void update(const void* data, size_t n);

  void update(std::string_view text) {
    update(text.data(), text.size());
  }

  /// Feeds `x` as 8 little-endian bytes (lengths and offsets, so that two
  /// different sequences of fields never hash the same bytes).
  void update_u64(uint64_t x);

  /// The digest of everything fed; the object is spent afterwards.
  digest256 finish();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// SHA-256 of `text`.
digest256 sha256_of(std::string_view text);

/// HMAC-SHA256 of `message` under `key`.
digest256 hmac_sha256(std::string_view key, std::string_view message);

/// Lower-case hex of `n` bytes.
std::string to_hex(const uint8_t* bytes, size_t n);

inline std::string to_hex(const digest256& d) {
  return to_hex(d.data(), d.size());
}

/// Parses 64 hex digits (either case) into `out`; false for anything else.
bool from_hex(std::string_view hex, digest256& out);

/// Whether two digests are equal, in time that does not depend on where they
/// differ (OpenSSL's CRYPTO_memcmp), so that a caller guessing a MAC or a key
/// learns nothing from how long a refusal takes.
bool constant_time_equal(const digest256& x, const digest256& y);

} // namespace volt
