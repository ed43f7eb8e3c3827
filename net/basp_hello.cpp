#include "net/basp_hello.hpp"

#include <cstring>

namespace volt {

namespace {

// What CAF 0.17.6 sends first on a connection it opens, measured with a relay
// that dumped the bytes of `volt-node generate --connect` (it does not wait
// for the server's handshake): 01 00 00 00 | 00 00 00 20 | 8 x 00 | 8 x 00 |
// 8 x 00. The BASP version (3) travels in the *server* handshake's
// operation_data; the client's is zero.
constexpr uint8_t client_handshake_op = 0x01;

/// A client handshake carries the client's node id (32 bytes measured) and
/// never comes near this.
constexpr uint32_t max_handshake_payload = 64 * 1024;

uint64_t big_endian(const uint8_t* p, size_t width) {
  uint64_t x = 0;
  for (size_t i = 0; i < width; ++i)
    x = (x << 8) | p[i];
  return x;
}

bool starts_with(const uint8_t* bytes, size_t n, const char* text) {
  auto len = std::strlen(text);
  return n >= len && std::memcmp(bytes, text, len) == 0;
}

bool looks_like_http(const uint8_t* bytes, size_t n) {
  for (auto method : {"GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ",
                      "PATCH ", "CONNECT ", "TRACE ", "PRI * HTTP/2"})
    if (starts_with(bytes, n, method))
      return true;
  return false;
}

/// A TLS record: handshake (0x16), version 3.x.
bool looks_like_tls(const uint8_t* bytes, size_t n) {
  return n >= 2 && bytes[0] == 0x16 && bytes[1] == 0x03;
}

basp_hello reject(const char* reason, std::string detail) {
  basp_hello result;
  result.what = basp_hello::verdict::rejected;
  result.reason = reason;
  result.detail = std::move(detail);
  return result;
}

} // namespace

basp_hello basp_hello::judge(const uint8_t* bytes, size_t n) {
  if (looks_like_http(bytes, n))
    return reject("http", "looks like HTTP");
  if (looks_like_tls(bytes, n))
    return reject("bad_handshake",
                  "looks like TLS (Volt's node port speaks plain BASP)");
  if (n >= 1 && bytes[0] != client_handshake_op)
    return reject("bad_handshake", "not a CAF client handshake (operation "
                                     + std::to_string(bytes[0])
                                     + ", expected 1)");
  for (size_t i = 1; i < 3 && i < n; ++i)
    if (bytes[i] != 0)
      return reject("bad_handshake",
                    "not a CAF client handshake (non-zero padding)");
  if (n >= 8) {
    auto len = big_endian(bytes + 4, 4);
    if (len == 0 || len > max_handshake_payload)
      return reject("bad_handshake", "not a CAF client handshake (payload of "
                                       + std::to_string(len) + " bytes)");
  }
  if (n >= 16 && big_endian(bytes + 8, 8) != 0)
    return reject("bad_handshake",
                  "not a CAF 0.17 client handshake (operation_data "
                    + std::to_string(big_endian(bytes + 8, 8))
                    + ", expected 0: another CAF version?)");
  basp_hello result;
  if (n >= basp_header_size)
    result.what = verdict::client_handshake;
  return result;
}

basp_hello basp_hello::judge_tls(const uint8_t* bytes, size_t n) {
  if (looks_like_http(bytes, n))
    return reject("http", "looks like HTTP");
  if (n >= 1 && bytes[0] == client_handshake_op
      && judge(bytes, n).what != verdict::rejected)
    return reject("plaintext",
                  "a CAF client without TLS; this node accepts only mutual "
                  "TLS (give the client tls_cert, tls_key and tls_ca)");
  // Record type 22 (handshake), version 3.x (SSL 3.0 up to TLS 1.3's
  // compatibility value 3.1-3.3), a length a ClientHello can have, then
  // handshake type 1 (ClientHello).
  constexpr size_t max_record = 16384 + 2048;
  if (n >= 1 && bytes[0] != 0x16)
    return reject("bad_handshake", "not a TLS ClientHello (record type "
                                     + std::to_string(bytes[0])
                                     + ", expected 22)");
  if (n >= 3 && (bytes[1] != 0x03 || bytes[2] > 0x04))
    return reject("bad_handshake", "not a TLS ClientHello (version "
                                     + std::to_string(bytes[1]) + "."
                                     + std::to_string(bytes[2]) + ")");
  if (n >= 5) {
    auto len = big_endian(bytes + 3, 2);
    if (len == 0 || len > max_record)
      return reject("bad_handshake", "not a TLS ClientHello (record of "
                                       + std::to_string(len) + " bytes)");
  }
  if (n >= 6 && bytes[5] != 0x01)
    return reject("bad_handshake", "not a TLS ClientHello (handshake type "
                                     + std::to_string(bytes[5])
                                     + ", expected 1)");
  basp_hello result;
  if (n >= tls_hello_size)
    result.what = verdict::client_handshake;
  return result;
}

std::string render_bytes(const uint8_t* bytes, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  std::string text;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0)
      hex += ' ';
    hex += digits[bytes[i] >> 4];
    hex += digits[bytes[i] & 0x0f];
    text += bytes[i] >= 0x20 && bytes[i] <= 0x7e ? static_cast<char>(bytes[i])
                                                 : '.';
  }
  return hex + " (\"" + text + "\")";
}

} // namespace volt
