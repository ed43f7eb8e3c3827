#pragma once

// When to scale: the autoscaler's decisions over a history of load samples,
// as a plain class (no actor, no clock of its own) so that it can be tested
// sample by sample.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace volt {

/// Cumulative histogram buckets: (upper bound, observations at or below it),
/// ascending, the last bound infinite (node_metrics::request_latency_buckets).
using latency_buckets = std::vector<std::pair<double, uint64_t>>;

/// The `q` quantile of the observations made between two snapshots of one
/// histogram, interpolated inside its bucket as Prometheus'
/// histogram_quantile does; nothing when none were made.
std::optional<double> window_quantile(double q, const latency_buckets& then,
                                      const latency_buckets& now);

/// One look at the engine.
struct load_sample {
  std::chrono::steady_clock::time_point at;
  /// Requests waiting for a batch slot.
  uint64_t queued = 0;
  /// Token rows sent to each expert since start (engine_load::expert_rows).
  std::vector<uint64_t> expert_rows;
  /// The request latency histogram since start.
  latency_buckets latency;
  /// Token rows sent to each node's expert hosts ("host:port") since they
  /// joined.
  std::map<std::string, uint64_t> node_rows;
};

/// What the autoscaler's thresholds are.
struct autoscale_thresholds {
  /// Overloaded while more requests than this wait...
  uint64_t queue_depth = 32;
  /// ... or while the window's P99 latency exceeds this (0: not used).
  double p99_seconds = 0;
  /// Low load while at most this many wait (and the P99 is within bounds).
  uint64_t low_queue_depth = 0;
  /// How long overload must hold before a scale-up.
  std::chrono::milliseconds window{30000};
  /// How long low load must hold before a scale-down.
  std::chrono::milliseconds scale_down_window{300000};
  /// No action this long after another.
  std::chrono::milliseconds cooldown{120000};
  /// Experts a scale-up names.
  size_t hot_experts = 2;
};

/// An expert and its token rows per second.
struct expert_rate {
  uint32_t expert = 0;
  double rows_per_second = 0;
};

/// A node and the token rows per second its expert hosts were sent.
struct node_rate {
  std::string node;
  double rows_per_second = 0;
};

/// What the load looks like at the newest sample.
struct load_view {
  uint64_t queued = 0;
  /// Request latency quantiles over the window; nothing without requests.
  std::optional<double> p90;
  std::optional<double> p99;
  /// The busiest experts over the window, busiest first (ties: lower id),
  /// only those with rows.
  std::vector<expert_rate> hot;
  /// Every node that hosts experts now, by name, with its rows per second
  /// over the window.
  std::vector<node_rate> nodes;
};

/// A decision: what to do and why.
struct autoscale_decision {
  enum class kind { none, scale_up, scale_down };
  kind action = kind::none;
  /// One line for the log and the webhook, e.g. "queue depth above 32 for
  /// 30000 ms (now 41)".
  std::string reason;
  load_view load;
};

/// "scale_up", "scale_down" or "none".
std::string to_string(autoscale_decision::kind x);

/// Decides from samples added in time order: scale up when overload held
/// for the window, scale down when low load held for the scale-down window
/// and a scale-up is still unanswered; never twice within the cooldown.
/// Every decision it returns counts as taken.
class autoscale_policy {
public:
  explicit autoscale_policy(autoscale_thresholds limits);

  /// Takes a sample and returns what to do now.
  autoscale_decision add(load_sample sample);

  /// Scale-ups not yet answered by a scale-down.
  int pending_scale_ups() const {
    return pending_;
  }

  /// Whether a scale-down may happen: false holds scale-downs back (while
  /// replicas are still being spawned) without losing the low-load time.
  void allow_scale_down(bool allowed) {
    scale_down_allowed_ = allowed;
  }

  /// Owes one more scale-down: a scale-down that could not retire its
  /// replicas is tried again after another low-load window.
  void owe_scale_down() {
    ++pending_;
  }

  const autoscale_thresholds& thresholds() const {
    return limits_;
  }

private:
  using time_point = std::chrono::steady_clock::time_point;

  /// The newest sample at least `span` older than the newest, else the
  /// oldest kept.
  const load_sample& baseline(std::chrono::milliseconds span) const;
  load_view view() const;
  bool overloaded(const load_view& v) const;
  bool low(const load_view& v) const;
  std::string overload_reason(const load_view& v, time_point now) const;
  std::string low_reason(const load_view& v, time_point now) const;

  autoscale_thresholds limits_;
  std::deque<load_sample> samples_;
  std::optional<time_point> high_since_;
  std::optional<time_point> low_since_;
  std::optional<time_point> last_action_;
  int pending_ = 0;
  bool scale_down_allowed_ = true;
};

} // namespace volt
