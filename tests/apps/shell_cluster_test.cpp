#define CAF_SUITE apps.shell_cluster

// `volt-node shell --command` against a real router and two workers: what
// it shows, what spawn and drain do to serving, and its errors.

#include <sstream>

#include "tests/apps/cli_checks.hpp"
#include "tests/cluster.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

std::string address(uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

/// `volt-node shell 127.0.0.1:PORT --command COMMAND [more]`.
run_result shell(uint16_t port, const std::string& command,
                 std::vector<std::string> more = {}) {
  std::vector<std::string> argv{volt_node_binary(), "shell", address(port),
                                "--command", command};
  argv.insert(argv.end(), more.begin(), more.end());
  return run_process(argv, std::chrono::seconds{120}, client_tls_env());
}

/// The line of `text` that contains `fragment`, or "".
std::string line_with(const std::string& text, const std::string& fragment) {
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    if (line.find(fragment) != std::string::npos)
      return line;
  return {};
}

/// The count before " rows sent" in the `nodes` line of `node`, or -1.
long rows_sent(const std::string& nodes, const std::string& node) {
  auto line = line_with(nodes, node);
  auto at = line.find(" rows sent");
  if (at == std::string::npos)
    return -1;
  auto from = line.rfind(' ', at - 1);
  return std::stol(line.substr(from + 1, at - from - 1));
}

/// Checks a successful command: exit 0, no error, and every fragment.
void check_ok(const run_result& r, const std::vector<std::string>& fragments) {
  CAF_CHECK_EQUAL(r.exit_code, 0);
  CAF_CHECK_EQUAL(r.err, "");
  for (const auto& f : fragments)
    if (r.out.find(f) == std::string::npos)
      CAF_FAIL("output '" << r.out << "' lacks '" << f << "'");
}

} // namespace

CAF_TEST(the shell shows spawns and drains a router with two workers) {
  temp_dir dir;
  // Sixteen layers, each crossing to a worker: a long generation takes
  // seconds, so a drain lands while it is in flight.
  auto model = write_deep_model(dir);
  auto a = free_port(), b = free_port(), r = free_port(), r_metrics = free_port();
  // A publishes every expert; the router spawns a replica of each on B.
  node_process worker_a{write_node_toml(
    dir, {"wa", "worker", a, 0,
          "[worker]\nexperts = [0, 1, 2, 3, 4, 5, 6, 7]\n", model})};
  node_process worker_b{write_node_toml(dir, {"wb", "worker", b, 0, "", model})};
  node_process router{write_node_toml(
    dir, {"router", "router", r, r_metrics,
          "[router]\nworkers = [\"" + address(a)
            + "\"]\nplacement = [{node = \"" + address(b)
            + "\", experts = [0, 1, 2, 3, 4, 5, 6, 7]}]\n",
          model})};
  CAF_REQUIRE(worker_a.wait_ready());
  CAF_REQUIRE(worker_b.wait_ready());
  CAF_REQUIRE(router.wait_ready());
  for (auto port : {a, b})
    CAF_REQUIRE(router.wait_log("expert host " + address(port) + " joined",
                                std::chrono::seconds{20}));

  CAF_MESSAGE("nodes, experts, queue, kv and metrics");
  auto nodes = shell(r, "nodes");
  check_ok(nodes, {"ID", "LIVENESS"});
  CAF_CHECK_NOT_EQUAL(line_with(nodes.out, "router").find(" up "),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(line_with(nodes.out, address(a)).find(" live "),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(line_with(nodes.out, address(b)).find(" live "),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(line_with(nodes.out, address(b)).find(" 0-7 "),
                      std::string::npos);
  auto experts = shell(r, "experts");
  check_ok(experts, {"REPLICAS"});
  for (int e = 0; e < 8; ++e) {
    std::istringstream in{experts.out};
    std::string line;
    std::getline(in, line); // the header
    for (int i = 0; i <= e; ++i)
      std::getline(in, line);
    CAF_CHECK_EQUAL(line.rfind(std::to_string(e) + " ", 0), 0u);
    CAF_CHECK_NOT_EQUAL(line.find(address(a)), std::string::npos);
    CAF_CHECK_NOT_EQUAL(line.find(address(b)), std::string::npos);
  }
  check_ok(shell(r, "queue"), {"queued:", "missing:     none"});
  check_ok(shell(r, "kv"), {"pool:", "prefix cache:"});
  auto metrics = shell(r, "metrics voltinfer_");
  check_ok(metrics, {"voltinfer_live_workers{node=\"router\"} 2"});
  std::istringstream metric_lines{metrics.out};
  for (std::string line; std::getline(metric_lines, line);)
    CAF_CHECK(line.rfind("voltinfer_", 0) == 0
              || line.rfind("# HELP voltinfer_", 0) == 0
              || line.rfind("# TYPE voltinfer_", 0) == 0);
  check_ok(shell(r, "metrics nothing_"), {"no metric name starts with"});

  CAF_MESSAGE("unknown commands and bad input: one line, exit 2");
  check_bad_input(shell(r, "bogus"), {"unknown command 'bogus'"});
  check_bad_input(shell(r, "expert"), {"did you mean 'experts'?"});
  check_bad_input(shell(r, "nodes now"), {"nodes: too many arguments"});
  check_bad_input(shell(r, "spawn 1,2"), {"usage: spawn EXPERTS on NODE"});
  check_bad_input(shell(r, "spawn 99 on " + address(a)),
                  {"expert 99 is outside the model (8 experts, 0 to 7)"});
  check_bad_input(shell(r, "spawn 3-1 on " + address(a)),
                  {"'3-1' is an empty range"});
  check_bad_input(shell(r, "spawn 1 on nowhere"),
                  {"expected HOST:PORT, got 'nowhere'"});
  check_bad_input(shell(r, "drain 127.0.0.1:1"),
                  {"drain: no expert host at 127.0.0.1:1"});
  check_bad_input(shell(a, "nodes"), {"no Volt engine is published there"});
  check_bad_input(run_process({volt_node_binary(), "shell", "nohost",
                               "--command", "nodes"}),
                  {"expected HOST:PORT, got 'nohost'"});
  // Nothing listens there: the spawn fails at once and is not retried.
  auto nobody = free_port();
  check_bad_input(shell(r, "spawn 0 on " + address(nobody)),
                  {"spawn on " + address(nobody) + " failed: ",
                   "cannot_connect_to_node"});

  CAF_MESSAGE("drain A while a generation is in flight");
  const auto prompt = long_prompt(20);
  const int tokens = 600;
  child_process client{{volt_node_binary(), "generate", "--connect",
                        address(r), "--prompt-ids", prompt, "--max-new-tokens",
                        std::to_string(tokens), "--ignore-eos", "--json"},
                       client_tls_env()};
  CAF_REQUIRE(wait_peer_traffic(r_metrics));
  auto drained = shell(r, "drain " + address(a));
  check_ok(drained, {"drained " + address(a), "experts 0-7 released"});
  auto requests = shell(r, "requests");
  check_ok(requests, {"STATE", "running"});
  CAF_CHECK_EQUAL(client.wait(std::chrono::seconds{120}), 0);
  CAF_CHECK_EQUAL(without_timings(client.out()),
                  without_timings(run_generate({"--model", model}, prompt,
                                               tokens)
                                    .out));
  CAF_CHECK(router.wait_log("expert host " + address(a)
                              + " drained and released",
                            std::chrono::seconds{5}));
  nodes = shell(r, "nodes");
  check_ok(nodes, {address(b)});
  CAF_CHECK_EQUAL(line_with(nodes.out, address(a)), "");
  // B is now the only host of every expert.
  check_bad_input(shell(r, "drain " + address(b)),
                  {"is the only live host of experts 0, 1, 2, 3, 4, 5, 6, 7"});

  CAF_MESSAGE("spawn experts on A again: it takes rows");
  check_ok(shell(r, "spawn 0-7 on " + address(a)),
           {"spawned experts 0-7 on " + address(a)});
  check_bad_input(shell(r, "spawn 0-7 on " + address(a)),
                  {"are already placed on " + address(a)});
  nodes = shell(r, "nodes");
  CAF_CHECK_NOT_EQUAL(line_with(nodes.out, address(a)).find(" live "),
                      std::string::npos);
  CAF_CHECK_EQUAL(rows_sent(nodes.out, address(a)), 0);
  auto after = run_generate({"--connect", address(r)}, "203", 6);
  CAF_CHECK_EQUAL(after.exit_code, 0);
  nodes = shell(r, "nodes");
  CAF_CHECK_GREATER(rows_sent(nodes.out, address(a)), 0);
  CAF_CHECK_GREATER(rows_sent(nodes.out, address(b)), 0);
  CAF_CHECK_EQUAL(router.stop(), 0);
  CAF_CHECK_EQUAL(worker_a.stop(), 0);
  CAF_CHECK_EQUAL(worker_b.stop(), 0);
}
