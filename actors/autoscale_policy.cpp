#include "actors/autoscale_policy.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace volt {

namespace {

double seconds_between(std::chrono::steady_clock::time_point from,
                       std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

int64_t ms_between(std::chrono::steady_clock::time_point from,
                   std::chrono::steady_clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from)
    .count();
}

} // namespace

std::optional<double> window_quantile(double q, const latency_buckets& then,
                                      const latency_buckets& now) {
  auto before = [&](size_t i) {
    return then.size() == now.size() ? then[i].second : uint64_t{0};
  };
  if (now.empty())
    return std::nullopt;
  auto total = now.back().second - before(now.size() - 1);
  if (total == 0)
    return std::nullopt;
  auto rank = q * static_cast<double>(total);
  double lower = 0;
  double below = 0; // observations in the buckets under this one
  for (size_t i = 0; i < now.size(); ++i) {
    auto [bound, cumulative] = now[i];
    auto count = static_cast<double>(cumulative - before(i));
    if (count >= rank) {
      // Like Prometheus: a quantile in the +Inf bucket is the highest finite
      // bound, one in the first bucket interpolates up from zero.
      if (std::isinf(bound))
        return i > 0 ? now[i - 1].first : 0.0;
      if (count == below)
        return bound;
      return lower + (bound - lower) * (rank - below) / (count - below);
    }
    lower = bound;
    below = count;
  }
  return lower;
}

std::string to_string(autoscale_decision::kind x) {
  switch (x) {
    case autoscale_decision::kind::none: return "none";
    case autoscale_decision::kind::scale_up: return "scale_up";
    case autoscale_decision::kind::scale_down: return "scale_down";
  }
  return "none";
}

autoscale_policy::autoscale_policy(autoscale_thresholds limits)
  : limits_(limits) {}

const load_sample&
autoscale_policy::baseline(std::chrono::milliseconds span) const {
  auto cutoff = samples_.back().at - span;
  for (auto i = samples_.rbegin(); i != samples_.rend(); ++i)
    if (i->at <= cutoff)
      return *i;
  return samples_.front();
}

load_view autoscale_policy::view() const {
  const auto& now = samples_.back();
  const auto& then = baseline(limits_.window);
  load_view v;
  v.queued = now.queued;
  v.p90 = window_quantile(0.9, then.latency, now.latency);
  v.p99 = window_quantile(0.99, then.latency, now.latency);
  auto dt = seconds_between(then.at, now.at);
  if (dt <= 0)
    return v;
  for (const auto& [node, rows] : now.node_rows) {
    auto before = then.node_rows.find(node);
    // A node that (re)joined since counts from zero.
    auto base = before != then.node_rows.end() && before->second <= rows
                  ? before->second
                  : uint64_t{0};
    v.nodes.push_back({node, static_cast<double>(rows - base) / dt});
  }
  if (then.expert_rows.size() != now.expert_rows.size())
    return v;
  for (size_t e = 0; e < now.expert_rows.size(); ++e)
    if (now.expert_rows[e] > then.expert_rows[e])
      v.hot.push_back(
        {static_cast<uint32_t>(e),
         static_cast<double>(now.expert_rows[e] - then.expert_rows[e]) / dt});
  std::stable_sort(v.hot.begin(), v.hot.end(),
                   [](const expert_rate& x, const expert_rate& y) {
                     return x.rows_per_second > y.rows_per_second;
                   });
  if (v.hot.size() > limits_.hot_experts)
    v.hot.resize(limits_.hot_experts);
  return v;
}

bool autoscale_policy::overloaded(const load_view& v) const {
  return v.queued > limits_.queue_depth
         || (limits_.p99_seconds > 0 && v.p99 && *v.p99 > limits_.p99_seconds);
}

bool autoscale_policy::low(const load_view& v) const {
  return v.queued <= limits_.low_queue_depth
         && !(limits_.p99_seconds > 0 && v.p99 && *v.p99 > limits_.p99_seconds);
}

std::string autoscale_policy::overload_reason(const load_view& v,
                                              time_point now) const {
  std::ostringstream out;
  out << "overloaded for " << ms_between(*high_since_, now) << " ms:";
  if (v.queued > limits_.queue_depth)
    out << " queue depth " << v.queued << " > " << limits_.queue_depth;
  if (limits_.p99_seconds > 0 && v.p99 && *v.p99 > limits_.p99_seconds)
    out << (v.queued > limits_.queue_depth ? "," : "") << " P99 latency "
        << *v.p99 << " s > " << limits_.p99_seconds << " s";
  return out.str();
}

std::string autoscale_policy::low_reason(const load_view& v,
                                         time_point now) const {
  std::ostringstream out;
  out << "load low for " << ms_between(*low_since_, now) << " ms: queue depth "
      << v.queued << " <= " << limits_.low_queue_depth;
  if (limits_.p99_seconds > 0)
    out << ", P99 latency within " << limits_.p99_seconds << " s";
  return out.str();
}

autoscale_decision autoscale_policy::add(load_sample sample) {
  samples_.push_back(std::move(sample));
  // Keep one sample older than the longer window as the baseline of rates.
  auto span = std::max(limits_.window, limits_.scale_down_window);
  auto now = samples_.back().at;
  while (samples_.size() > 2 && samples_[1].at <= now - span)
    samples_.pop_front();
  autoscale_decision d;
  d.load = view();
  if (overloaded(d.load)) {
    if (!high_since_)
      high_since_ = now;
  } else {
    high_since_.reset();
  }
  if (low(d.load)) {
    if (!low_since_)
      low_since_ = now;
  } else {
    low_since_.reset();
  }
  if (last_action_ && now - *last_action_ < limits_.cooldown)
    return d;
  if (high_since_ && now - *high_since_ >= limits_.window) {
    d.action = autoscale_decision::kind::scale_up;
    d.reason = overload_reason(d.load, now);
    ++pending_;
    last_action_ = now;
    // Another scale-up needs overload to hold for a window after this one.
    high_since_ = now;
  } else if (low_since_ && pending_ > 0 && scale_down_allowed_
             && now - *low_since_ >= limits_.scale_down_window) {
    d.action = autoscale_decision::kind::scale_down;
    d.reason = low_reason(d.load, now);
    --pending_;
    last_action_ = now;
    low_since_ = now;
  }
  return d;
}

} // namespace volt
