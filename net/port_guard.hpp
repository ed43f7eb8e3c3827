#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "caf/expected.hpp"

namespace volt {

class node_metrics;

/// The TCP front of a node's public [network] port.
///
/// CAF's middleman listens on loopback only; the guard accepts each
/// connection on host:port, connects it to the middleman's loopback port and
/// relays bytes both ways on one thread (epoll, non-blocking sockets,
/// TCP_NODELAY, at most one read buffer in flight per direction). Nothing a
/// client sends reaches CAF before its first 32 bytes look like a CAF 0.17
/// BASP client handshake: HTTP, random bytes, a client that closes mid-header
/// or stays silent past the handshake timeout is logged (rate-limited),
/// counted in voltinfer_rejected_connections_total{reason} and closed, and
/// the node keeps serving. CAF itself would drop such a client without a
/// word: Debian's CAF has its logger compiled out and no hook reports it.
///
/// With `tls`, the middleman behind the guard speaks TLS (CAF's OpenSSL
/// module) and the first bytes must start a TLS ClientHello instead; a CAF
/// client without TLS is refused as "plaintext". The guard relays the
/// encrypted bytes; the middleman checks the certificates, and each handshake
/// it refuses (net/tls_watch.hpp) is logged here under the client's address,
/// once per client and cause within a minute, and counted as "tls".
class port_guard {
public:
  struct options {
    /// [network] host and port: where clients and other nodes connect.
    std::string host;
    uint16_t port = 0;
    /// [metrics] port, named in the hint for HTTP clients (0: off).
    uint16_t metrics_port = 0;
    /// A client that has not sent a whole BASP header by then is closed. A
    /// CAF client sends it at once on connect; 10 s leaves room for a loaded
    /// machine and still frees a silent connection soon.
    std::chrono::milliseconds handshake_timeout{10000};
    /// Where rejections are counted; may be null.
    std::shared_ptr<node_metrics> metrics;
    /// The middleman speaks TLS: clients must too.
    bool tls = false;
    /// After each event the loop polls without sleeping this long (0: it
    /// sleeps at once), trading a busy core for the wake-up of the next
    /// message's thread.
    std::chrono::microseconds busy_poll{0};
  };

  /// Binds host:port; nothing is accepted before `serve`. The error text says
  /// why it cannot bind (callers name the config key).
  static caf::expected<std::unique_ptr<port_guard>> listen(options opts);

  /// Starts relaying accepted connections to 127.0.0.1:`backend_port` on the
  /// guard's thread. Call once.
  void serve(uint16_t backend_port);

  /// Closes the public port and returns once it is closed; connections
  /// already relayed go on, so requests in flight still get their answers.
  void stop_accepting();

  /// Relays what either side already sent for up to a second (the actor
  /// system is shut down first, so its last answers reach their clients),
  /// then closes every connection and joins the thread.
  ~port_guard();

  port_guard(const port_guard&) = delete;
  port_guard& operator=(const port_guard&) = delete;

  /// The public port.
  uint16_t port() const {
    return port_;
  }

  /// The middleman's loopback port (0 before `serve`).
  uint16_t backend_port() const {
    return backend_port_;
  }

private:
  struct relay;

  port_guard() = default;

  uint16_t port_ = 0;
  uint16_t backend_port_ = 0;
  std::unique_ptr<relay> relay_;
  std::thread thread_;
};

} // namespace volt
