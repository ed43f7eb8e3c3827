#include "net/rejection_log.hpp"

#include <cstring>

#include "base/log.hpp"
#include "net/metrics.hpp"

namespace volt {

namespace {

constexpr auto window = std::chrono::seconds{1};

bool is_trust_reason(const char* reason) {
  return std::strcmp(reason, "plaintext") == 0
         || std::strcmp(reason, "tls") == 0;
}

/// "10.0.0.9" of "10.0.0.9:51234" ("[::1]" of "[::1]:51234"): a client
/// comes from a new port every time.
std::string host_of(const std::string& peer) {
  auto colon = peer.rfind(':');
  return colon == std::string::npos ? peer : peer.substr(0, colon);
}

std::string seconds_of(rejection_log::clock::duration d) {
  return std::to_string(
    std::chrono::duration_cast<std::chrono::seconds>(d).count());
}

} // namespace

rejection_log::rejection_log(uint16_t port,
                             std::shared_ptr<node_metrics> metrics, int burst,
                             clock::duration trust_window)
  : port_(port), metrics_(std::move(metrics)), burst_(burst),
    trust_lines_(trust_window) {
  // Every reason is exported from the start, so a scrape shows zeros.
  if (metrics_)
    for (auto reason : reasons)
      metrics_->connections_rejected(reason, 0);
}

void rejection_log::count(const char* reason) {
  if (metrics_)
    metrics_->connections_rejected(reason, 1);
}

void rejection_log::reject(const std::string& peer, const char* reason,
                           const std::string& what, clock::time_point now) {
  count(reason);
  tick(now);
  if (is_trust_reason(reason)
      && !trust_lines_.pass(host_of(peer) + ": " + what, now))
    return;
  write(peer, what, now);
}

void rejection_log::write(const std::string& peer, const std::string& what,
                          clock::time_point) {
  if (logged_in_window_ >= burst_) {
    ++suppressed_;
    return;
  }
  ++logged_in_window_;
  VOLT_WARN("guard", "rejected connection from " << peer << " on port " << port_
                                                 << ": " << what);
}

void rejection_log::empty(const std::string& peer, clock::time_point) {
  count("empty");
  VOLT_DEBUG("guard", peer << " connected to port " << port_
                           << " and closed without sending anything");
}

void rejection_log::tick(clock::time_point now) {
  for (auto& [key, n] : trust_lines_.expired(now))
    VOLT_WARN("guard", n << " more connections to port " << port_
                         << " refused in the last "
                         << seconds_of(trust_lines_.window())
                         << " s and not logged, from " << key);
  if (now - window_start_ < window)
    return;
  if (suppressed_ > 0)
    VOLT_WARN("guard", suppressed_
                         << " more connections to port " << port_
                         << " rejected and not logged (at most " << burst_
                         << " lines a second; "
                            "voltinfer_rejected_connections_total counts "
                            "them all)");
  window_start_ = now;
  logged_in_window_ = 0;
  suppressed_ = 0;
}

} // namespace volt
