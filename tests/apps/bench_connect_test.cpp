#define CAF_SUITE apps.bench_connect

// `volt-node bench model --connect`: the benchmark's requests sent to a real
// router and worker over loopback TCP give the same tokens as the benchmark
// of an engine in the benchmark's own process, and with --metrics each row
// tells the bytes on the wire and the share of its steps spent waiting for
// the worker. Speed is not checked.

#include <cmath>

#include "model/json.hpp"
#include "tests/apps/cli_checks.hpp"
#include "tests/cluster.hpp"
#include "tests/process.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// `volt-node bench model --model <tiny>` with small shapes and `flags`.
run_result bench(std::vector<std::string> flags) {
  std::vector<std::string> argv{volt_node_binary(), "bench",   "model",
                                "--model",          tiny_mixtral_dir(),
                                "--batch",          "1,3",     "--prompt",
                                "8,16",             "--decode-prompt",
                                "4",                "--new-tokens",
                                "3",                "--json"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return run_process(argv, std::chrono::seconds{180});
}

std::string at(uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

} // namespace

CAF_TEST(bench model drives a router and worker and gets the standalone tokens) {
  temp_dir dir;
  metered_cluster cluster{dir};
  CAF_REQUIRE(cluster.wait_ready());
  auto remote = bench({"--connect", at(cluster.router_port), "--metrics",
                       at(cluster.router_metrics)});
  CAF_REQUIRE_EQUAL(remote.exit_code, 0);
  auto local = bench({"--device", "cpu"});
  CAF_REQUIRE_EQUAL(local.exit_code, 0);
  auto r = json::parse(remote.out, "router bench");
  auto l = json::parse(local.out, "standalone bench");
  CAF_REQUIRE(r && l);
  CAF_CHECK_EQUAL(r->at("card").get<std::string>(),
                  "node at " + at(cluster.router_port));
  CAF_CHECK_EQUAL(r->at("layers").get<int64_t>(), 2);
  // Only this process's own engine has a load time and memory to report.
  CAF_CHECK(json::find(*r, "rss_mib_peak") == nullptr);
  CAF_CHECK(json::find(*l, "rss_mib_peak") != nullptr);
  // Every token row crosses to the worker in each layer as its top-2 rows of
  // 64 floats and comes back: 2 x 2 x 64 x 4 bytes.
  const double wire_bytes = 2 * 2 * 64 * 4;
  for (auto section : {"prefill", "decode"}) {
    const auto& rows = r->at(section);
    const auto& want = l->at(section);
    CAF_REQUIRE_EQUAL(rows.size(), 2u);
    CAF_REQUIRE_EQUAL(want.size(), 2u);
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& row = rows[i];
      CAF_CHECK_EQUAL(row.at("new_tokens"), want[i].at("new_tokens"));
      CAF_CHECK_EQUAL(row.at("wire_bytes_per_token_layer").get<double>(),
                      wire_bytes);
      auto share = row.at("expert_wait_share").get<double>();
      CAF_CHECK_GREATER(share, 0.0);
      CAF_CHECK_LESS_OR_EQUAL(share, 1.0);
      // The standalone run has no node to ask.
      CAF_CHECK(json::find(want[i], "expert_wait_share") == nullptr);
    }
  }
  const auto& prefill = r->at("prefill");
  CAF_CHECK_EQUAL(prefill[1].at("tokens").get<int64_t>(), 16);
  CAF_CHECK_GREATER(prefill[1].at("tokens_per_second").get<double>(), 0.0);
  CAF_CHECK_EQUAL(prefill[1].at("new_tokens").size(), 1u);
  const auto& decode = r->at("decode");
  CAF_CHECK_EQUAL(decode[1].at("batch").get<int64_t>(), 3);
  CAF_CHECK_GREATER(decode[1].at("step_ms").get<double>(), 0.0);
  CAF_CHECK_EQUAL(decode[1].at("new_tokens").size(), 3u);
  // Without --metrics the rows say nothing about the network.
  auto plain = bench({"--connect", at(cluster.router_port), "--batch", "1",
                      "--prompt", "8"});
  CAF_REQUIRE_EQUAL(plain.exit_code, 0);
  auto p = json::parse(plain.out, "bench without metrics");
  CAF_REQUIRE(p);
  CAF_CHECK(json::find(p->at("decode")[0], "wire_bytes_per_token_layer")
            == nullptr);
}

CAF_TEST(bench model refuses flags that do not fit connect) {
  check_bad_input(bench({"--connect", "127.0.0.1:1", "--device", "cpu"}),
                  {"--device: not with --connect"});
  check_bad_input(bench({"--connect", "127.0.0.1:1", "--check-cpu", "4"}),
                  {"--check-cpu: not with --connect"});
  check_bad_input(bench({"--connect", "nowhere"}),
                  {"--connect: expected HOST:PORT, got 'nowhere'"});
  check_bad_input(bench({"--metrics", "127.0.0.1:1"}),
                  {"--metrics: needs --connect"});
  check_bad_input(bench({"--wait-seconds", "3"}),
                  {"--wait-seconds: needs --connect"});
  check_bad_input(
    bench({"--connect", "127.0.0.1:1", "--metrics", "127.0.0.1"}),
    {"--metrics: expected HOST:PORT, got '127.0.0.1'"});
}

CAF_TEST(bench model names the node or metrics endpoint it cannot reach) {
  temp_dir dir;
  // Nothing listens on a port that was free a moment ago.
  auto nobody = at(free_port());
  auto r = bench({"--connect", nobody, "--wait-seconds", "1"});
  CAF_CHECK_EQUAL(r.exit_code, 1);
  CAF_CHECK_NOT_EQUAL(r.err.find("cannot reach a Volt node at " + nobody),
                      std::string::npos);
  auto port = free_port();
  node_process node{write_node_toml(dir, {"s", "standalone", port, 0, ""})};
  CAF_REQUIRE(node.wait_ready());
  auto quiet = at(free_port());
  auto m = bench({"--connect", at(port), "--metrics", quiet});
  CAF_CHECK_EQUAL(m.exit_code, 1);
  CAF_CHECK_NOT_EQUAL(m.err.find("/metrics at " + quiet + ": cannot connect"),
                      std::string::npos);
}
