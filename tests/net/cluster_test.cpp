#define CAF_SUITE net.cluster

// A router and workers as separate volt-node processes over loopback TCP:
// answers equal the standalone ones bit for bit (static discovery and remote
// spawning), a worker killed or frozen mid-request is replaced by a replica
// without the client noticing, a lost expert fails the request naming it,
// garbage on the ports is logged, counted and does no harm, and SIGTERM
// finishes in-flight work.

#include "tests/cluster.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

std::string static_router_extra(const std::vector<uint16_t>& workers) {
  std::string list;
  for (auto p : workers)
    list += (list.empty() ? "\"" : ", \"") + std::string{"127.0.0.1:"}
            + std::to_string(p) + "\"";
  return "[router]\nworkers = [" + list + "]\nready_timeout_ms = 3000\n";
}

std::string worker_extra(const std::string& experts) {
  return "[worker]\nexperts = [" + experts + "]\n";
}

/// Two workers each hosting every expert, and a router over both, serving
/// `model`, with mutual TLS or the given [security] section.
struct replicated_cluster {
  explicit replicated_cluster(bool deep = false,
                              std::string security_toml = tls_security_toml())
    : model(deep ? write_deep_model(dir) : tiny_mixtral_dir()),
      security(std::move(security_toml)) {}

  temp_dir dir;
  std::string model;
  std::string security;
  uint16_t w1 = free_port(), w2 = free_port(), r = free_port();
  uint16_t w1_metrics = free_port(), r_metrics = free_port();
  node_process worker1{write_node_toml(
    dir, {"w1", "worker", w1, w1_metrics,
          worker_extra("0, 1, 2, 3, 4, 5, 6, 7"), model, security})};
  node_process worker2{write_node_toml(
    dir, {"w2", "worker", w2, 0, worker_extra("0, 1, 2, 3, 4, 5, 6, 7"), model,
          security})};
  node_process router{
    write_node_toml(dir, {"router", "router", r, r_metrics,
                          static_router_extra({w1, w2}), model, security})};

  std::vector<std::string> connect() const {
    return {"--connect", "127.0.0.1:" + std::to_string(r)};
  }

  /// Starts a long generation through the router and waits until the
  /// router has sent its first rows to a worker.
  std::unique_ptr<child_process> start_long_request(int new_tokens) const {
    auto client = std::make_unique<child_process>(
      std::vector<std::string>{volt_node_binary(), "generate", "--connect",
                               "127.0.0.1:" + std::to_string(r), "--prompt-ids",
                               long_prompt(40), "--max-new-tokens",
                               std::to_string(new_tokens), "--ignore-eos",
                               "--json"},
      client_tls_env());
    CAF_REQUIRE(wait_peer_traffic(r_metrics));
    return client;
  }

  /// Every node is up and the router has joined both workers: "ready" needs
  /// only one host per expert, and a test that stops a worker the router has
  /// not joined yet would wait for a failover that cannot come.
  void require_ready() {
    CAF_REQUIRE(worker1.wait_ready());
    CAF_REQUIRE(worker2.wait_ready());
    CAF_REQUIRE(router.wait_ready());
    for (auto port : {w1, w2})
      CAF_REQUIRE(router.wait_log("expert host 127.0.0.1:"
                                    + std::to_string(port) + " joined",
                                  std::chrono::seconds{10}));
  }
};

} // namespace

CAF_TEST(router and two workers reproduce the standalone answer bit for bit) {
  temp_dir dir;
  auto w1 = free_port(), w2 = free_port(), r = free_port();
  node_process worker1{
    write_node_toml(dir, {"w1", "worker", w1, 0, worker_extra("0, 1, 2, 3")})};
  node_process worker2{
    write_node_toml(dir, {"w2", "worker", w2, 0, worker_extra("4, 5, 6, 7")})};
  node_process router{write_node_toml(dir, {"router", "router", r, 0,
                                            static_router_extra({w1, w2})})};
  CAF_REQUIRE(worker1.wait_ready());
  CAF_REQUIRE(worker2.wait_ready());
  CAF_REQUIRE(router.wait_ready());
  for (auto prompt : {std::string{"203"}, long_prompt(17), long_prompt(40)}) {
    auto remote = run_generate({"--connect", "127.0.0.1:" + std::to_string(r)},
                               prompt, 12, {"--all-logits"});
    CAF_REQUIRE_EQUAL(remote.exit_code, 0);
    auto local = run_generate({"--model", tiny_mixtral_dir()}, prompt, 12,
                              {"--all-logits"});
    // Floats print with 9 digits, so equal text means equal float32 bits.
    CAF_CHECK_EQUAL(without_timings(remote.out), without_timings(local.out));
  }
  CAF_CHECK_EQUAL(router.stop(), 0);
  CAF_CHECK_EQUAL(worker1.stop(), 0);
  CAF_CHECK_EQUAL(worker2.stop(), 0);
}

CAF_TEST(the router spawns placed experts on worker nodes) {
  temp_dir dir;
  auto w1 = free_port(), w2 = free_port(), r = free_port();
  // Workers without experts of their own: they host what routers spawn.
  node_process worker1{write_node_toml(dir, {"w1", "worker", w1, 0, ""})};
  node_process worker2{write_node_toml(dir, {"w2", "worker", w2, 0, ""})};
  CAF_REQUIRE(worker1.wait_ready());
  CAF_REQUIRE(worker2.wait_ready());
  auto placement = "[router]\nplacement = [{node = \"127.0.0.1:"
                   + std::to_string(w1)
                   + "\", experts = [0, 2, 4, 6]}, {node = \"127.0.0.1:"
                   + std::to_string(w2) + "\", experts = [1, 3, 5, 7]}]\n";
  node_process router{
    write_node_toml(dir, {"router", "router", r, 0, placement})};
  CAF_REQUIRE(router.wait_ready());
  CAF_CHECK(
    worker1.wait_log("spawned experts 0, 2, 4, 6", std::chrono::seconds{5}));
  CAF_CHECK(
    worker2.wait_log("spawned experts 1, 3, 5, 7", std::chrono::seconds{5}));
  auto remote = run_generate({"--connect", "127.0.0.1:" + std::to_string(r)},
                             long_prompt(9), 8);
  CAF_REQUIRE_EQUAL(remote.exit_code, 0);
  CAF_CHECK_EQUAL(without_timings(remote.out),
                  without_timings(standalone_json(long_prompt(9), 8)));
}

CAF_TEST(a worker killed mid request is replaced by its replica) {
  replicated_cluster c{true};
  c.require_ready();
  auto want = without_timings(standalone_json(long_prompt(40), 600, c.model));
  auto client = c.start_long_request(600);
  // Replicas take turns, so within a layer or two the router sends rows to
  // the stopped worker and waits: SIGKILL then lands with rows in flight.
  c.worker1.signal(SIGSTOP);
  std::this_thread::sleep_for(std::chrono::milliseconds{100});
  c.worker1.signal(SIGKILL);
  CAF_REQUIRE_EQUAL(client->wait(std::chrono::seconds{60}), 0);
  CAF_CHECK_EQUAL(without_timings(client->out()), want);
  CAF_CHECK(c.router.wait_log("is down", std::chrono::seconds{1}));
  // The worker died with rows in flight, and they went to the replica.
  CAF_CHECK(c.router.wait_log("re-sending", std::chrono::seconds{1}));
}

CAF_TEST(a frozen worker is noticed within seconds and bypassed) {
  replicated_cluster c{true};
  c.require_ready();
  auto want = without_timings(standalone_json(long_prompt(40), 600, c.model));
  auto client = c.start_long_request(600);
  auto frozen_at = std::chrono::steady_clock::now();
  c.worker1.signal(SIGSTOP);
  CAF_REQUIRE(c.router.wait_log("is down", std::chrono::seconds{10}));
  auto noticed = std::chrono::steady_clock::now() - frozen_at;
  CAF_MESSAGE(
    "frozen worker noticed after "
    << std::chrono::duration_cast<std::chrono::milliseconds>(noticed).count()
    << " ms");
  CAF_CHECK_LESS(noticed, std::chrono::seconds{5});
  CAF_REQUIRE_EQUAL(client->wait(std::chrono::seconds{60}), 0);
  CAF_CHECK_EQUAL(without_timings(client->out()), want);
  CAF_CHECK(c.router.wait_log("re-sending", std::chrono::seconds{1}));
}

CAF_TEST(losing the only host of an expert fails the request naming it) {
  temp_dir dir;
  auto model = write_deep_model(dir);
  auto w1 = free_port(), w2 = free_port(), r = free_port();
  auto r_metrics = free_port();
  node_process worker1{write_node_toml(
    dir, {"w1", "worker", w1, 0, worker_extra("0, 1, 2, 3"), model})};
  node_process worker2{write_node_toml(
    dir, {"w2", "worker", w2, 0, worker_extra("4, 5, 6, 7"), model})};
  node_process router{write_node_toml(dir, {"router", "router", r, r_metrics,
                                            static_router_extra({w1, w2}),
                                            model})};
  CAF_REQUIRE(router.wait_ready());
  child_process client{{volt_node_binary(), "generate", "--connect",
                        "127.0.0.1:" + std::to_string(r), "--prompt-ids",
                        long_prompt(40), "--max-new-tokens", "600",
                        "--ignore-eos", "--json"},
                       client_tls_env()};
  CAF_REQUIRE(wait_peer_traffic(r_metrics));
  worker2.signal(SIGKILL);
  auto code = client.wait(std::chrono::seconds{30});
  CAF_CHECK_NOT_EQUAL(code, 0);
  CAF_CHECK_NOT_EQUAL(client.err().find("no live host for experts"),
                      std::string::npos);
  CAF_MESSAGE("client said: " << client.err());
  // New requests wait for the experts, then fail naming them.
  auto later = run_generate({"--connect", "127.0.0.1:" + std::to_string(r),
                             "--wait-seconds", "1"},
                            "5", 2);
  CAF_CHECK_NOT_EQUAL(later.exit_code, 0);
  CAF_CHECK_NOT_EQUAL(later.err.find("4, 5, 6, 7"), std::string::npos);
  // The worker comes back: the router reconnects and serves again.
  node_process again{dir.file("w2.toml")};
  CAF_REQUIRE(again.wait_ready());
  auto healed = run_generate({"--connect", "127.0.0.1:" + std::to_string(r)},
                             "203", 4);
  CAF_CHECK_EQUAL(healed.exit_code, 0);
}

// Plaintext links: the guard judges the first bytes as BASP (with TLS it
// judges them as a TLS ClientHello: net.tls covers that).
CAF_TEST(garbage on the ports is logged and the nodes keep serving) {
  replicated_cluster c{false, insecure_security_toml};
  c.require_ready();
  std::string junk(100000, '\0');
  for (size_t i = 0; i < junk.size(); ++i)
    junk[i] = static_cast<char>((i * 7919) % 251);
  for (auto port : {c.w1, c.r}) {
    tcp_exchange(port, junk, std::chrono::milliseconds{500});
    tcp_exchange(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                 std::chrono::milliseconds{500});
    tcp_exchange(port, std::string(64, '\xff'), std::chrono::milliseconds{500});
  }
  auto remote = run_generate(c.connect(), "203", 6, {}, {});
  CAF_REQUIRE_EQUAL(remote.exit_code, 0);
  CAF_CHECK_EQUAL(without_timings(remote.out),
                  without_timings(standalone_json("203", 6)));
  // One line per rejected client names its address, the port and the bytes.
  for (auto [node, port, metrics_port] :
       {std::tuple<node_process*, uint16_t, uint16_t>{&c.worker1, c.w1,
                                                      c.w1_metrics},
        {&c.router, c.r, c.r_metrics}}) {
    auto on_port = " on port " + std::to_string(port) + ": ";
    for (auto want :
         {on_port
            + "not a CAF client handshake (operation 0, expected 1); "
              "first bytes: 00 8a 19 a3",
          on_port
            + "looks like HTTP; this port speaks CAF's BASP, Prometheus "
              "metrics are on [metrics] port "
            + std::to_string(metrics_port),
          on_port
            + "not a CAF client handshake (operation 255, expected 1); "
              "first bytes: ff ff"})
      if (!node->wait_log(want, std::chrono::seconds{2}))
        CAF_FAIL("log lacks '" << want << "':\n" << node->log());
    CAF_CHECK_EQUAL(count_lines(node->log(), "rejected connection from "
                                             "127.0.0.1:"),
                    3u);
    auto text = http_get(metrics_port, "/metrics");
    auto id = node == &c.router ? std::string{"router"} : std::string{"w1"};
    for (auto want : {"voltinfer_rejected_connections_total{node=\"" + id
                        + "\",reason=\"bad_handshake\"} 2",
                      "voltinfer_rejected_connections_total{node=\"" + id
                        + "\",reason=\"http\"} 1"})
      if (text.find(want) == std::string::npos)
        CAF_FAIL("metrics lack '" << want << "':\n" << text);
  }
}

CAF_TEST(a client that connects and leaves is counted but not logged) {
  temp_dir dir;
  auto port = free_port(), metrics_port = free_port();
  node_process node{
    write_node_toml(dir, {"s", "standalone", port, metrics_port, ""})};
  CAF_REQUIRE(node.wait_ready());
  // Port scanners and TCP health checks do this all day: no warning for them.
  tcp_exchange(port, "", std::chrono::milliseconds{0});
  auto remote = run_generate({"--connect", "127.0.0.1:" + std::to_string(port)},
                             "203", 6);
  CAF_REQUIRE_EQUAL(remote.exit_code, 0);
  CAF_CHECK_EQUAL(without_timings(remote.out),
                  without_timings(standalone_json("203", 6)));
  CAF_CHECK(http_get(metrics_port, "/metrics")
              .find("voltinfer_rejected_connections_total{node=\"s\",reason="
                    "\"empty\"} 1")
            != std::string::npos);
  CAF_CHECK_EQUAL(node.stop(), 0);
  CAF_CHECK_EQUAL(node.log().find("WARN"), std::string::npos);
}

CAF_TEST(a flood of garbage is counted in full and logged in brief) {
  temp_dir dir;
  auto port = free_port(), metrics_port = free_port();
  node_process node{
    write_node_toml(dir, {"s", "standalone", port, metrics_port, ""})};
  CAF_REQUIRE(node.wait_ready());
  for (int i = 0; i < 40; ++i)
    tcp_exchange(port, "hello?\n", std::chrono::milliseconds{100});
  CAF_CHECK(node.wait_log("rejected and not logged", std::chrono::seconds{3}));
  // 5 lines a second at most: 40 clients within a few seconds log far fewer.
  CAF_CHECK_LESS(count_lines(node.log(), "rejected connection from"), 25u);
  CAF_CHECK(http_get(metrics_port, "/metrics")
              .find("voltinfer_rejected_connections_total{node=\"s\",reason="
                    "\"bad_handshake\"} 40")
            != std::string::npos);
  auto remote = run_generate({"--connect", "127.0.0.1:" + std::to_string(port)},
                             "203", 2);
  CAF_CHECK_EQUAL(remote.exit_code, 0);
}

CAF_TEST(a network port in use ends the node with one line naming the key) {
  temp_dir dir;
  auto port = free_port();
  node_process first{write_node_toml(dir, {"a", "standalone", port, 0, ""})};
  CAF_REQUIRE(first.wait_ready());
  write_node_toml(dir, {"b", "standalone", port, 0, ""});
  auto second
    = run_process({volt_node_binary(), "--config", dir.file("b.toml")});
  CAF_CHECK_EQUAL(second.exit_code, 2);
  CAF_CHECK_NOT_EQUAL(second.err.find("b.toml: [network] port: cannot listen "
                                      "on 127.0.0.1:"
                                      + std::to_string(port)
                                      + ": Address already in use"),
                      std::string::npos);
  CAF_CHECK_EQUAL(count_lines(second.err, "volt-node: "), 1u);
}

CAF_TEST(sigterm finishes the request in flight before the router exits) {
  replicated_cluster c{true};
  c.require_ready();
  auto want = without_timings(standalone_json(long_prompt(40), 600, c.model));
  auto client = c.start_long_request(600);
  c.router.signal(SIGTERM);
  CAF_CHECK_EQUAL(client->wait(std::chrono::seconds{60}), 0);
  CAF_CHECK_EQUAL(without_timings(client->out()), want);
  CAF_CHECK_EQUAL(c.router.stop(), 0);
  CAF_CHECK(c.router.log().find("in-flight requests finished")
            != std::string::npos);
}

CAF_TEST(a client waits for a router that starts late) {
  temp_dir dir;
  auto w = free_port(), r = free_port();
  child_process client{{volt_node_binary(), "generate", "--connect",
                        "127.0.0.1:" + std::to_string(r), "--prompt-ids", "203",
                        "--max-new-tokens", "3", "--json"},
                       client_tls_env()};
  std::this_thread::sleep_for(std::chrono::milliseconds{500});
  node_process router{
    write_node_toml(dir, {"router", "router", r, 0, static_router_extra({w})})};
  std::this_thread::sleep_for(std::chrono::milliseconds{300});
  node_process worker{write_node_toml(
    dir, {"w", "worker", w, 0, worker_extra("0, 1, 2, 3, 4, 5, 6, 7")})};
  CAF_REQUIRE_EQUAL(client.wait(std::chrono::seconds{30}), 0);
  CAF_CHECK_NOT_EQUAL(client.out().find("[170,288,170]"), std::string::npos);
}

CAF_TEST(kv_cache and engine keys shape the running node) {
  temp_dir dir;
  auto port = free_port();
  node_process node{write_node_toml(
    dir,
    {"small", "standalone", port, 0,
     "[kv_cache]\npage_size = 8\nnum_pages = 3\n[engine]\nmax_batch = 2\n"})};
  CAF_REQUIRE(node.wait_ready());
  // 20 + 10 tokens need 4 pages of 8 tokens; the pool has 3.
  auto big = run_generate({"--connect", "127.0.0.1:" + std::to_string(port)},
                          long_prompt(20), 10);
  CAF_CHECK_EQUAL(big.exit_code, 2);
  CAF_CHECK_NOT_EQUAL(big.err.find("needs 4 KV pages for 30 tokens but the "
                                   "pool has 3"),
                      std::string::npos);
  auto fits = run_generate({"--connect", "127.0.0.1:" + std::to_string(port)},
                           "203", 12);
  CAF_CHECK_EQUAL(fits.exit_code, 0);
}
