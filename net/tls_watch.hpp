#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace volt {

/// A TLS handshake of a node link that ended in a fatal alert: one side did
/// not accept the other's certificate (or got none).
struct tls_refusal {
  /// This process accepted the connection (a node judging a peer), rather
  /// than opened it.
  bool accepted = false;
  /// The other end of the socket, "address:port". On a node that is the port
  /// guard's loopback end; the guard knows which client it relays.
  std::string peer;
  uint16_t peer_port = 0;
  /// Why, in one line, e.g. "it sent no certificate".
  std::string reason;
};

/// Reports TLS handshakes that fail in this process, and keeps one failed TLS
/// connection from failing the others (CAF leaves OpenSSL's per-thread error
/// queue full; the hook empties it before each socket read and write, as
/// OpenSSL asks). CAF's OpenSSL module
/// makes a fresh OpenSSL context for every connection and reports nothing (its
/// logger is compiled out of Debian's build), so this installs, once per
/// process, an OpenSSL ex-data hook that gives every new context an info
/// callback; the callback sees each fatal alert and the verification result.
/// Refusals of accepted connections go to the sink; refusals of connections
/// this process opened are logged at info level (once a minute per peer and
/// reason) and kept for `tls_failure_towards`.
void watch_tls_handshakes();

/// Where refusals of accepted connections go (the port guard). Called on
/// CAF's middleman thread: keep it short. An empty function removes the sink.
void set_tls_refusal_sink(std::function<void(const tls_refusal&)> sink);

/// Why the last handshake this process opened towards `port` since `since`
/// failed, if one did; a client uses it to stop retrying and say why.
std::optional<std::string>
tls_failure_towards(uint16_t port, std::chrono::steady_clock::time_point since);

} // namespace volt
