#define CAF_SUITE net.metrics

// The Prometheus endpoint of real nodes: every metric of the table shows up
// with sensible values after traffic, the text passes `promtool check
// metrics`, and bad HTTP gets an error status without harming the node.

#include "tests/cluster.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// Runs promtool (extracted by scripts/setup.sh) on `text`.
run_result promtool_check(const std::string& text, const temp_dir& dir) {
  auto file = dir.file("metrics.txt");
  write_text(file, text);
  // promtool reads stdin; a shell redirect keeps child_process simple.
  return run_process(
    {"/bin/sh", "-c", std::string{VOLT_PROMTOOL} + " check metrics < " + file});
}

} // namespace

CAF_TEST(a router and a worker export the metric table) {
  temp_dir dir;
  metered_cluster cluster{dir};
  CAF_REQUIRE(cluster.wait_ready());
  auto w = cluster.worker_port, wm = cluster.worker_metrics;
  auto r = cluster.router_port, rm = cluster.router_metrics;
  for (int i = 0; i < 3; ++i)
    CAF_REQUIRE_EQUAL(
      run_generate({"--connect", "127.0.0.1:" + std::to_string(r)},
                   long_prompt(5), 4)
        .exit_code,
      0);
  auto response = http_get(rm, "/metrics");
  CAF_REQUIRE(response.rfind("HTTP/1.1 200 OK", 0) == 0);
  auto text = http_body(response);
  for (auto want :
       {"voltinfer_request_latency_seconds_bucket{node=\"router\",le=\"",
        "voltinfer_request_latency_seconds_count{node=\"router\"} 3",
        "voltinfer_requests_total{node=\"router\",outcome=\"ok\"} 3",
        "voltinfer_queue_depth{node=\"router\"} 0",
        "voltinfer_tokens_generated_total{node=\"router\"} 12",
        "voltinfer_live_workers{node=\"router\"} 1",
        "voltinfer_failovers_total{node=\"router\"} 0",
        "voltinfer_kv_pages_capacity{node=\"router\"} 64",
        "voltinfer_kv_pages_used{node=\"router\"} ",
        "voltinfer_prefix_lookups_total{node=\"router\"} 3",
        "voltinfer_prefix_hits_total{node=\"router\"} 0",
        "voltinfer_kv_copy_on_write_total{node=\"router\"} 0",
        "voltinfer_batch_size_bucket{node=\"router\",le=\"1\"}",
        "voltinfer_autoscaler_actions_total{node=\"router\",action=\"scale_"
        "up\"} 0",
        "voltinfer_autoscaler_actions_total{node=\"router\",action=\"scale_"
        "down\"} 0",
        "voltinfer_autoscaler_replicas{node=\"router\"} 0",
        // Three prompts of 5 tokens, each prefilled in one step, then 3
        // decode steps of one row each.
        "voltinfer_step_rows_total{node=\"router\",phase=\"prefill\"} 15",
        "voltinfer_step_rows_total{node=\"router\",phase=\"decode\"} 9",
        "voltinfer_step_seconds_total{node=\"router\",phase=\"decode\"} ",
        "voltinfer_expert_wait_seconds_total{node=\"router\",phase=\"decode\"}"
        " "}) {
    if (text.find(want) == std::string::npos)
      CAF_FAIL("router metrics lack '" << want << "':\n" << text);
  }
  auto peer = "peer=\"127.0.0.1:" + std::to_string(w) + "\"";
  CAF_CHECK_NOT_EQUAL(
    text.find("voltinfer_peer_bytes_sent_total{node=\"router\"," + peer),
    std::string::npos);
  CAF_CHECK_NOT_EQUAL(
    text.find("voltinfer_peer_bytes_received_total{node=\"router\"," + peer),
    std::string::npos);
  // Every step of the router waited for the worker, and not longer than
  // the step took.
  auto value_of = [&](const std::string& series) {
    auto at = text.find(series + " ");
    CAF_REQUIRE(at != std::string::npos);
    return std::stod(text.substr(at + series.size() + 1));
  };
  for (std::string phase : {"prefill", "decode"}) {
    auto labels = "{node=\"router\",phase=\"" + phase + "\"}";
    auto wait = value_of("voltinfer_expert_wait_seconds_total" + labels);
    CAF_CHECK_GREATER(wait, 0.0);
    CAF_CHECK_LESS_OR_EQUAL(wait,
                            value_of("voltinfer_step_seconds_total" + labels));
  }
  auto worker_text = http_body(http_get(wm, "/metrics"));
  CAF_CHECK_NOT_EQUAL(worker_text.find("voltinfer_expert_requests_total{node="
                                       "\"w\",expert_id=\""),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(worker_text.find("voltinfer_expert_rows_total{node="
                                       "\"w\",expert_id=\""),
                      std::string::npos);
  for (const auto& t : {text, worker_text}) {
    auto check = promtool_check(t, dir);
    CAF_CHECK_EQUAL(check.exit_code, 0);
    if (check.exit_code != 0)
      CAF_MESSAGE("promtool: " << check.out << check.err);
  }
}

CAF_TEST(bad http gets an error status and the endpoint keeps serving) {
  temp_dir dir;
  auto port = free_port(), mport = free_port();
  node_process node{write_node_toml(dir, {"s", "standalone", port, mport, ""})};
  CAF_REQUIRE(node.wait_ready());
  CAF_CHECK(http_get(mport, "/nope").rfind("HTTP/1.1 404", 0) == 0);
  CAF_CHECK(tcp_exchange(mport, "POST /metrics HTTP/1.1\r\n\r\n")
              .rfind("HTTP/1.1 405", 0)
            == 0);
  CAF_CHECK(
    tcp_exchange(mport, "\x01\x02garbage\r\n\r\n").rfind("HTTP/1.1 400", 0)
    == 0);
  // A client that connects and says nothing is dropped after a second.
  CAF_CHECK(tcp_exchange(mport, "", std::chrono::milliseconds{3000}).empty());
  CAF_CHECK(http_get(mport, "/metrics").rfind("HTTP/1.1 200 OK", 0) == 0);
  // The metrics port is taken: the node says so and exits with code 2.
  write_node_toml(dir, {"t", "standalone", free_port(), mport, ""});
  auto r = run_process({volt_node_binary(), "--config", dir.file("t.toml")});
  CAF_CHECK_EQUAL(r.exit_code, 2);
  CAF_CHECK_NOT_EQUAL(r.err.find("[metrics] port"), std::string::npos);
}
