#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/log_throttle.hpp"

namespace volt {

class node_metrics;

/// Reports connections that the port guard closed: every one is counted in
/// voltinfer_rejected_connections_total{reason}, and at most `burst` per
/// second are logged, so a flood of garbage cannot flood the log; the rest
/// are summed up in one line once the second is over. Refusals for want of
/// trust ("plaintext" and "tls": a client without TLS or without an accepted
/// certificate, which typically retries) are logged once per peer address and
/// cause within `trust_window`; the repeats are summed up when it ends. Used by
/// one thread.
class rejection_log {
public:
  using clock = std::chrono::steady_clock;

  /// Reasons a connection is closed before its BASP handshake.
  static constexpr const char* reasons[]
    = {"http",  "bad_handshake", "timeout", "closed_early",
       "empty", "plaintext",     "tls"};

  /// `port` is the guarded port the lines name; `metrics` may be null.
  rejection_log(uint16_t port, std::shared_ptr<node_metrics> metrics,
                int burst = 5,
                clock::duration trust_window = std::chrono::minutes{1});

  /// Counts a rejection of `peer` ("address:port") and logs `what` unless
  /// this second's lines are used up.
  void reject(const std::string& peer, const char* reason,
              const std::string& what, clock::time_point now);

  /// Counts a connection that closed without sending a byte (a port scanner
  /// or a TCP health check): routine, so logged at debug level only.
  void empty(const std::string& peer, clock::time_point now);

  /// Writes the summary of suppressed lines once their second is over.
  void tick(clock::time_point now);

  /// Whether a summary is due later (the caller must then call tick).
  bool summary_pending() const {
    return suppressed_ > 0 || trust_lines_.pending();
  }

private:
  void count(const char* reason);

  /// Writes one line within this second's budget.
  void write(const std::string& peer, const std::string& what,
             clock::time_point now);

  uint16_t port_;
  std::shared_ptr<node_metrics> metrics_;
  int burst_;
  clock::time_point window_start_;
  int logged_in_window_ = 0;
  uint64_t suppressed_ = 0;
  per_key_log_throttle trust_lines_;
};

} // namespace volt
