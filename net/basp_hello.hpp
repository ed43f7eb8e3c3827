#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace volt {

/// Size of a BASP header (CAF 0.17.6, caf/io/basp/header.hpp): operation u8,
/// two padding bytes, flags u8, payload_len u32, operation_data u64,
/// source_actor u64, dest_actor u64, all big-endian on the wire.
constexpr size_t basp_header_size = 32;

/// Bytes that tell a TLS ClientHello: the record header (type u8, version u16,
/// length u16) and the handshake message type.
constexpr size_t tls_hello_size = 6;

/// What the first bytes a client sent to a node's port say about it.
struct basp_hello {
  enum class verdict {
    /// The bytes so far fit a BASP client handshake; more are needed.
    undecided,
    /// A whole header that is a plausible BASP client handshake (for
    /// `judge_tls`: the start of a TLS ClientHello).
    client_handshake,
    /// Not a CAF 0.17 node: `reason` and `detail` say why.
    rejected,
  };

  verdict what = verdict::undecided;

  /// The metric label of a rejection: "http", "bad_handshake" or, on a TLS
  /// port, "plaintext".
  const char* reason = "";

  /// For the log: what was wrong, and a hint when the bytes look like another
  /// protocol (HTTP, TLS).
  std::string detail;

  /// Judges the first `n` bytes a client sent (n <= basp_header_size). Decides
  /// as early as a byte contradicts the handshake, so a client that sends a
  /// short line and waits is answered at once rather than at the timeout.
  static basp_hello judge(const uint8_t* bytes, size_t n);

  /// Judges the first `n` bytes (n <= tls_hello_size) a client sent to a
  /// port that speaks TLS: they must start a TLS ClientHello. A CAF client
  /// without TLS is rejected as "plaintext", early, so that it hears at once
  /// rather than after the timeout.
  static basp_hello judge_tls(const uint8_t* bytes, size_t n);
};

/// `bytes` as space-separated hex, then the printable characters in quotes
/// (others as '.'), e.g. `47 45 54 20 ("GET ")`.
std::string render_bytes(const uint8_t* bytes, size_t n);

} // namespace volt
