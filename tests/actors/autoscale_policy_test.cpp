#define CAF_SUITE actors.autoscale_policy

// The autoscaler's decisions, sample by sample on a made-up clock: overload
// must hold for the window, low load for the scale-down window, a
// scale-down only answers a scale-up, nothing happens within the cooldown;
// latency quantiles come from histogram differences as Prometheus computes
// them, and hot experts from row-count differences.

#include "actors/autoscale_policy.hpp"

#include <cmath>

#include "tests/test_dsl.hpp"

using namespace volt;
using namespace std::chrono_literals;

namespace {

using kind = autoscale_decision::kind;

/// A clock the test moves, and samples taken on it.
struct fake_load {
  std::chrono::steady_clock::time_point now{};
  std::vector<uint64_t> rows = std::vector<uint64_t>(4, 0);
  latency_buckets latency = {{0.1, 0}, {1.0, 0}, {INFINITY, 0}};

  load_sample at(std::chrono::milliseconds later, uint64_t queued) {
    now += later;
    return load_sample{now, queued, rows, latency, {}};
  }

  /// `n` requests that took between the bounds of bucket `i`.
  void finish(size_t i, uint64_t n) {
    for (auto j = i; j < latency.size(); ++j)
      latency[j].second += n;
  }
};

autoscale_thresholds limits() {
  autoscale_thresholds t;
  t.queue_depth = 4;
  t.low_queue_depth = 0;
  t.window = 300ms;
  t.scale_down_window = 500ms;
  t.cooldown = 1000ms;
  t.hot_experts = 2;
  return t;
}

} // namespace

CAF_TEST(quantiles of a window interpolate inside their bucket) {
  latency_buckets then = {{0.1, 10}, {1.0, 10}, {10.0, 10}, {INFINITY, 10}};
  // 100 requests in the window: 50 under 0.1 s, 40 in (0.1, 1], 10 in (1, 10].
  latency_buckets now = {{0.1, 60}, {1.0, 100}, {10.0, 110}, {INFINITY, 110}};
  auto q = [](double q, const latency_buckets& a, const latency_buckets& b) {
    return window_quantile(q, a, b).value_or(-1.0);
  };
  CAF_CHECK_EQUAL(q(0.5, then, now), 0.1);
  CAF_CHECK_LESS(std::abs(q(0.7, then, now) - 0.55), 1e-9);
  CAF_CHECK_LESS(std::abs(q(0.99, then, now) - 9.1), 1e-9);
  // Nothing finished in the window: no quantile.
  CAF_CHECK(!window_quantile(0.99, now, now));
  // A quantile in the +Inf bucket is the highest finite bound.
  latency_buckets slow = {{0.1, 60}, {1.0, 100}, {10.0, 110}, {INFINITY, 210}};
  CAF_CHECK_EQUAL(q(0.99, then, slow), 10.0);
  // Without a baseline every observation counts.
  CAF_CHECK_LESS(std::abs(q(0.5, {}, now) - 0.1 * 55 / 60), 1e-9);
}

CAF_TEST(overload must hold for the window before a scale up) {
  autoscale_policy p{limits()};
  fake_load load;
  CAF_CHECK(p.add(load.at(0ms, 9)).action == kind::none);
  CAF_CHECK(p.add(load.at(100ms, 9)).action == kind::none);
  // A dip below the threshold starts the window again.
  CAF_CHECK(p.add(load.at(100ms, 4)).action == kind::none);
  CAF_CHECK(p.add(load.at(100ms, 5)).action == kind::none);
  CAF_CHECK(p.add(load.at(200ms, 5)).action == kind::none);
  auto d = p.add(load.at(100ms, 7));
  CAF_CHECK(d.action == kind::scale_up);
  CAF_CHECK_EQUAL(d.reason, "overloaded for 300 ms: queue depth 7 > 4");
  CAF_CHECK_EQUAL(d.load.queued, 7u);
  CAF_CHECK_EQUAL(p.pending_scale_ups(), 1);
  // Within the cooldown nothing happens, however long overload lasts.
  for (int i = 0; i < 9; ++i)
    CAF_CHECK(p.add(load.at(100ms, 9)).action == kind::none);
  CAF_CHECK(p.add(load.at(100ms, 9)).action == kind::scale_up);
  CAF_CHECK_EQUAL(p.pending_scale_ups(), 2);
}

CAF_TEST(a scale down answers a scale up once low load held) {
  autoscale_policy p{limits()};
  fake_load load;
  // Low load alone never scales down: nothing was scaled up.
  for (int i = 0; i < 20; ++i)
    CAF_CHECK(p.add(load.at(100ms, 0)).action == kind::none);
  CAF_CHECK(p.add(load.at(100ms, 9)).action == kind::none);
  CAF_CHECK(p.add(load.at(300ms, 9)).action == kind::scale_up);
  // Low load from here; the cooldown (1 s) outlasts the window (500 ms).
  autoscale_decision d;
  int steps = 0;
  while (d.action == kind::none && steps < 30) {
    d = p.add(load.at(100ms, 0));
    ++steps;
  }
  CAF_CHECK(d.action == kind::scale_down);
  CAF_CHECK_EQUAL(steps, 10); // the cooldown, not the window, held it back
  CAF_CHECK_EQUAL(d.reason.rfind("load low for 900 ms: queue depth 0 <= 0", 0),
                  0u);
  CAF_CHECK_EQUAL(p.pending_scale_ups(), 0);
  for (int i = 0; i < 30; ++i)
    CAF_CHECK(p.add(load.at(100ms, 0)).action == kind::none);
}

CAF_TEST(scale downs wait while they are held back) {
  auto t = limits();
  t.cooldown = 0ms;
  autoscale_policy p{t};
  fake_load load;
  p.add(load.at(0ms, 9));
  CAF_CHECK(p.add(load.at(300ms, 9)).action == kind::scale_up);
  p.allow_scale_down(false);
  for (int i = 0; i < 10; ++i)
    CAF_CHECK(p.add(load.at(100ms, 0)).action == kind::none);
  p.allow_scale_down(true);
  CAF_CHECK(p.add(load.at(100ms, 0)).action == kind::scale_down);
  // A scale down that could not retire its replicas is owed again.
  p.owe_scale_down();
  CAF_CHECK(p.add(load.at(100ms, 0)).action == kind::none);
  for (int i = 0; i < 3; ++i)
    CAF_CHECK(p.add(load.at(100ms, 0)).action == kind::none);
  CAF_CHECK(p.add(load.at(100ms, 0)).action == kind::scale_down);
}

CAF_TEST(p99 latency over the window also counts as overload) {
  auto t = limits();
  t.p99_seconds = 0.5;
  autoscale_policy p{t};
  fake_load load;
  p.add(load.at(0ms, 0));
  load.finish(1, 10); // ten requests of 0.1 to 1 s: P99 0.991 s
  auto first = p.add(load.at(100ms, 0));
  auto p99 = first.load.p99.value_or(-1.0);
  CAF_CHECK_LESS(std::abs(p99 - 0.991), 1e-9);
  CAF_CHECK(first.action == kind::none);
  // Slow requests keep finishing: the P99 over the window stays high.
  load.finish(1, 10);
  p.add(load.at(100ms, 0));
  load.finish(1, 10);
  p.add(load.at(100ms, 0));
  load.finish(1, 10);
  auto d = p.add(load.at(100ms, 0));
  CAF_CHECK(d.action == kind::scale_up);
  CAF_CHECK_NOT_EQUAL(d.reason.find("P99 latency 0.991 s > 0.5 s"),
                      std::string::npos);
  // Once the slow requests leave the window, load is low again.
  for (int i = 0; i < 4; ++i)
    p.add(load.at(100ms, 0));
  CAF_CHECK(!p.add(load.at(100ms, 0)).load.p99);
}

CAF_TEST(hot experts are the busiest over the window) {
  autoscale_policy p{limits()};
  fake_load load;
  p.add(load.at(0ms, 0));
  load.rows = {100, 0, 300, 200};
  auto d = p.add(load.at(500ms, 0));
  CAF_REQUIRE_EQUAL(d.load.hot.size(), 2u);
  CAF_CHECK_EQUAL(d.load.hot[0].expert, 2u);
  CAF_CHECK_EQUAL(d.load.hot[0].rows_per_second, 600.0);
  CAF_CHECK_EQUAL(d.load.hot[1].expert, 3u);
  // Rates over the window (300 ms), not since start: only expert 1 works.
  load.rows = {100, 50, 300, 200};
  d = p.add(load.at(500ms, 0));
  CAF_REQUIRE_EQUAL(d.load.hot.size(), 1u);
  CAF_CHECK_EQUAL(d.load.hot[0].expert, 1u);
  CAF_CHECK_EQUAL(d.load.hot[0].rows_per_second, 100.0);
}

CAF_TEST(every node that hosts experts gets its rate) {
  autoscale_policy p{limits()};
  fake_load load;
  auto sample = load.at(0ms, 0);
  sample.node_rows = {{"a:1", 1000}, {"b:1", 50}};
  p.add(sample);
  sample = load.at(500ms, 0);
  // b rejoined (its count started again), c is new, a kept working.
  sample.node_rows = {{"a:1", 1300}, {"b:1", 20}, {"c:1", 100}};
  auto d = p.add(sample);
  CAF_REQUIRE_EQUAL(d.load.nodes.size(), 3u);
  CAF_CHECK_EQUAL(d.load.nodes[0].node, "a:1");
  CAF_CHECK_EQUAL(d.load.nodes[0].rows_per_second, 600.0);
  CAF_CHECK_EQUAL(d.load.nodes[1].rows_per_second, 40.0);
  CAF_CHECK_EQUAL(d.load.nodes[2].node, "c:1");
  CAF_CHECK_EQUAL(d.load.nodes[2].rows_per_second, 200.0);
}
