#include "base/digest.hpp"

#include <new>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace volt {

struct sha256::impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();

  impl() {
    // Both fail only when memory runs out; nothing can be hashed then.
    if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1)
      throw std::bad_alloc{};
  }

  ~impl() {
    EVP_MD_CTX_free(ctx);
  }
};

sha256::sha256() : impl_(std::make_unique<impl>()) {}

sha256::~sha256() = default;

sha256::sha256(sha256&&) noexcept = default;

sha256& sha256::operator=(sha256&&) noexcept = default;

void sha256::update(const void* data, size_t n) {
  EVP_DigestUpdate(impl_->ctx, data, n);
}

void sha256::update_u64(uint64_t x) {
  uint8_t bytes[8];
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<uint8_t>(x >> (8 * i));
  update(bytes, sizeof(bytes));
}

digest256 sha256::finish() {
  digest256 result{};
  unsigned int n = 0;
  EVP_DigestFinal_ex(impl_->ctx, result.data(), &n);
  return result;
}

digest256 sha256_of(std::string_view text) {
  sha256 h;
  h.update(text);
  return h.finish();
}

digest256 hmac_sha256(std::string_view key, std::string_view message) {
  digest256 result{};
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(),
       result.data(), &n);
  return result;
}

std::string to_hex(const uint8_t* bytes, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string result;
  result.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    result.push_back(digits[bytes[i] >> 4]);
    result.push_back(digits[bytes[i] & 0xf]);
  }
  return result;
}

bool from_hex(std::string_view hex, digest256& out) {
  if (hex.size() != 2 * out.size())
    return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < out.size(); ++i) {
    auto hi = nibble(hex[2 * i]);
    auto lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

bool constant_time_equal(const digest256& x, const digest256& y) {
  return CRYPTO_memcmp(x.data(), y.data(), x.size()) == 0;
}

} // namespace volt
