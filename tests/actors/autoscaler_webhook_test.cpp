#define CAF_SUITE actors.autoscaler_webhook

// The autoscaler's webhook when it fails: a webhook that answers too slowly
// or is not there at all costs a bounded number of POSTs per event, each
// failure logged and counted, and serving goes on undisturbed; a bad
// [autoscaler] key stops the node before it starts.

#include "tests/actors/reference_load.hpp"
#include "tests/actors/webhook_receiver.hpp"
#include "tests/cluster.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// A standalone node whose queue overflows with four clients (one sequence
/// per step) and whose autoscaler posts one scale_up to `url` (the cooldown
/// outlasts the test).
struct overloaded_node {
  overloaded_node(const std::string& url, int retries)
    : node(write_node_toml(
      dir, {"s", "standalone", free_port(), metrics,
            "[engine]\nmax_batch = 1\n[http]\nport = " + std::to_string(http)
              + "\n[autoscaler]\nenabled = true\ninterval_ms = 50\n"
                "queue_depth_threshold = 1\nwindow_ms = 200\ncooldown_ms = "
                "600000\nwebhook_url = \""
              + url + "\"\nwebhook_timeout_ms = 200\nwebhook_retries = "
              + std::to_string(retries) + "\nwebhook_backoff_ms = 50\n"})) {}

  /// Serves four clients until the webhook poster gives up on the
  /// scale_up; every answer must equal the standalone one.
  void serve_until_webhook_gives_up() {
    auto ref = make_reference(2, 12);
    CAF_REQUIRE(node.wait_ready());
    reference_load load{http, ref, 4};
    CAF_REQUIRE(
      node.wait_log("giving up on this event", std::chrono::seconds{60}));
    load.stop();
    CAF_CHECK_GREATER(load.ok(), 4);
    CAF_CHECK_EQUAL(load.bad(), 0);
    if (load.bad() != 0)
      CAF_MESSAGE("last problem: " << load.last_problem());
  }

  temp_dir dir;
  uint16_t http = free_port();
  uint16_t metrics = free_port();
  node_process node;
};

} // namespace

CAF_TEST(a slow webhook gets a bounded number of tries and serving goes on) {
  // Answers after 1.5 s: every POST times out after 200 ms.
  webhook_receiver hook{std::chrono::milliseconds{1500}};
  overloaded_node s{hook.url(), 2};
  s.serve_until_webhook_gives_up();
  // The first POST and two retries (the webhook reads each request even
  // after the node stopped waiting for its answer), then no more: wait past
  // another back-off round to see that nothing follows.
  CAF_CHECK(hook.wait_for("scale_up", 3, std::chrono::seconds{10}));
  std::this_thread::sleep_for(std::chrono::seconds{1});
  CAF_CHECK_EQUAL(hook.events("scale_up").size(), 3u);
  const auto& log = s.node.log();
  CAF_CHECK_EQUAL(count_lines(log, "autoscaler: scale_up: "), 1u);
  CAF_CHECK_NOT_EQUAL(log.find("webhook: POST of scale_up to "
                               "http://127.0.0.1:"),
                      std::string::npos);
  CAF_CHECK_EQUAL(count_lines(log, "failed (attempt 1 of 3): no answer within "
                                   "200 ms"),
                  1u);
  CAF_CHECK_EQUAL(count_lines(log, "failed (attempt 2 of 3)"), 1u);
  CAF_CHECK_EQUAL(count_lines(log, "failed (attempt 3 of 3)"), 1u);
  CAF_CHECK_NOT_EQUAL(log.find("retrying in 50 ms"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(log.find("retrying in 100 ms"), std::string::npos);
  // The path may hold a secret: logs name the origin only.
  CAF_CHECK_EQUAL(log.find("/hooks/volt"), std::string::npos);
  auto text = metrics_text(s.metrics);
  CAF_CHECK_EQUAL(metric_sum(text, "voltinfer_autoscaler_webhook_posts_total{"
                                   "node=\"s\",outcome=\"error\"}"),
                  3.0);
  CAF_CHECK_EQUAL(metric_sum(text, "voltinfer_autoscaler_actions_total{"
                                   "node=\"s\",action=\"scale_up\"}"),
                  1.0);
  CAF_CHECK_EQUAL(metric_sum(text, "voltinfer_requests_total{node=\"s\","
                                   "outcome=\"error\"}"),
                  0.0);
  CAF_CHECK_EQUAL(s.node.stop(), 0);
}

CAF_TEST(a webhook that is down is logged and serving goes on) {
  // Nothing listens there.
  overloaded_node s{"http://127.0.0.1:" + std::to_string(free_port()) + "/hook",
                    1};
  s.serve_until_webhook_gives_up();
  const auto& log = s.node.log();
  CAF_CHECK_EQUAL(count_lines(log, "failed (attempt 1 of 2): cannot connect; "
                                   "retrying in 50 ms"),
                  1u);
  CAF_CHECK_EQUAL(count_lines(log, "failed (attempt 2 of 2): cannot connect; "
                                   "giving up on this event"),
                  1u);
  CAF_CHECK_EQUAL(s.node.stop(), 0);
}

CAF_TEST(a bad autoscaler key stops the node with one line naming it) {
  temp_dir dir;
  auto run = [&](const std::string& id, const std::string& section) {
    auto file = write_node_toml(
      dir, {id, "router", free_port(), 0,
            "[router]\nworkers = [\"127.0.0.1:9\"]\n" + section});
    return run_process({volt_node_binary(), "--config", file});
  };
  struct bad_case {
    std::string toml;
    std::string message;
  };
  for (const auto& c : std::vector<bad_case>{
         {"[autoscaler]\nwebhook_url = \"ftp://x/y\"\n",
          "[autoscaler] webhook_url: expected \"\" (no webhook) or "
          "\"http[s]://host[:port][/path]\""},
         {"[autoscaler]\nenabled = \"yes\"\n",
          "[autoscaler] enabled: expected a boolean, got a string"},
         {"[autoscaler]\nspare_nodes = [\"nowhere\"]\n",
          "[autoscaler] spare_nodes: element 0: expected \"host:port\""},
         {"[autoscaler]\ninterval_ms = 2000\nwindow_ms = 1000\n",
          "[autoscaler] window_ms: 1000 ms is shorter than interval_ms"}}) {
    auto r = run("bad", c.toml);
    CAF_CHECK_EQUAL(r.exit_code, 2);
    CAF_CHECK_NOT_EQUAL(r.err.find(c.message), std::string::npos);
    CAF_CHECK_EQUAL(count_lines(r.err, "\n"), 1u);
    if (r.err.find(c.message) == std::string::npos)
      CAF_MESSAGE("stderr: " << r.err);
  }
}
