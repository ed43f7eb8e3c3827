#include "net/rejection_log.hpp"

#include "base/log.hpp"
#include "net/metrics.hpp"

namespace volt {

namespace {

constexpr auto window = std::chrono::seconds{1};

} // namespace

rejection_log::rejection_log(uint16_t port,
                             std::shared_ptr<node_metrics> metrics, int burst)
  : port_(port), metrics_(std::move(metrics)), burst_(burst) {
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
