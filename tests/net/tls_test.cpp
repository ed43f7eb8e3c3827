#define CAF_SUITE net.tls

// Mutual TLS on node links, with real volt-node processes over loopback and
// certificates from scripts/make_certs.sh: a TLS cluster answers as a
// plaintext one does; a TLS node opens no plaintext port (its HTTP API port
// stays plain HTTP); clients and routers without a certificate of the
// cluster's CA are refused, logged once per peer and cause, and cannot spawn
// experts; bad TLS settings stop a node or a client with one line and exit
// code 2.

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "caf/io/middleman.hpp"
#include "caf/scoped_actor.hpp"
#include "net/actor_system_setup.hpp"
#include "net/tls_files.hpp"
#include "tests/apps/cli_checks.hpp"
#include "tests/cluster.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

std::string worker_extra(const std::string& experts) {
  return "[worker]\nexperts = [" + experts + "]\n";
}

std::string router_extra(const std::vector<uint16_t>& workers,
                         const std::string& more = "") {
  std::string list;
  for (auto p : workers)
    list += (list.empty() ? "\"" : ", \"") + std::string{"127.0.0.1:"}
            + std::to_string(p) + "\"";
  return "[router]\nworkers = [" + list + "]\nready_timeout_ms = 3000\n" + more;
}

std::string connect_to(uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

/// The TCP ports process `pid` listens on: its socket inodes matched with
/// the kernel's listening sockets.
std::set<uint16_t> listening_ports(pid_t pid) {
  std::set<std::string> inodes;
  std::error_code ec;
  for (const auto& fd : std::filesystem::directory_iterator(
         "/proc/" + std::to_string(pid) + "/fd", ec)) {
    auto target = std::filesystem::read_symlink(fd.path(), ec).string();
    if (target.rfind("socket:[", 0) == 0)
      inodes.insert(target.substr(8, target.size() - 9));
  }
  std::set<uint16_t> ports;
  for (auto table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in{table};
    std::string line;
    std::getline(in, line); // the header
    while (std::getline(in, line)) {
      std::istringstream fields{line};
      std::string slot, local, remote, state, queues, timer, retransmits, uid,
        timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer
        >> retransmits >> uid >> timeout >> inode;
      if (state == "0A" && inodes.count(inode) > 0)
        ports.insert(static_cast<uint16_t>(
          std::stoul(local.substr(local.find(':') + 1), nullptr, 16)));
    }
  }
  return ports;
}

/// Opens a CAF link to 127.0.0.1:`port` from this process, with the test
/// client certificate or in plaintext; the error, or none when it opened.
caf::error try_link(uint16_t port, bool tls) {
  std::optional<tls_files> files;
  if (tls) {
    const auto& certs = test_certs::get();
    auto loaded
      = tls_files::load({certs.file("client.pem"), certs.file("client-key.pem"),
                         certs.file("ca.pem")});
    if (!loaded)
      return std::move(loaded.error());
    files = std::move(*loaded);
  }
  caf::actor_system_config cfg;
  configure_actor_system(cfg, std::chrono::milliseconds{0},
                         files ? &*files : nullptr);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  caf::error result;
  self
    ->request(link_manager(sys), std::chrono::seconds{30}, caf::connect_atom_v,
              std::string{"127.0.0.1"}, port)
    .receive([](const caf::node_id&, caf::strong_actor_ptr&,
                const std::set<std::string>&) {},
             [&](caf::error& err) { result = std::move(err); });
  return result;
}

/// `openssl s_client` against 127.0.0.1:`port`, trusting the cluster's CA,
/// presenting `cert` and `key` when given: a TLS client that is not CAF.
run_result openssl_client(uint16_t port, const std::string& cert = "",
                          const std::string& key = "") {
  std::vector<std::string> argv{
    "/bin/sh", "-c",
    "exec openssl s_client -connect 127.0.0.1:" + std::to_string(port)
      + " -CAfile '" + test_certs::get().file("ca.pem") + "'"
      + (cert.empty() ? "" : " -cert '" + cert + "' -key '" + key + "'")
      + " -brief </dev/null"};
  return run_process(argv, std::chrono::seconds{30});
}

/// The environment of a client with the other CA's certificate and CA.
std::vector<std::string> rogue_client_env() {
  const auto& certs = test_certs::get();
  return {"VOLT_SECURITY_TLS_CERT=" + certs.rogue("node.pem"),
          "VOLT_SECURITY_TLS_KEY=" + certs.rogue("node-key.pem"),
          "VOLT_SECURITY_TLS_CA=" + certs.rogue("ca.pem")};
}

/// The [security] section of a node with the other CA's files.
std::string rogue_security_toml() {
  const auto& certs = test_certs::get();
  return "[security]\ntls_cert = \"" + certs.rogue("node.pem")
         + "\"\ntls_key = \"" + certs.rogue("node-key.pem") + "\"\ntls_ca = \""
         + certs.rogue("ca.pem") + "\"\n";
}

} // namespace

CAF_TEST(a TLS cluster gives the same tokens as a plaintext one) {
  temp_dir dir;
  auto tw1 = free_port(), tw2 = free_port(), tr = free_port();
  auto pw = free_port(), pr = free_port();
  node_process tls_w1{write_node_toml(dir, {"tw1", "worker", tw1, 0,
                                            worker_extra("0, 1, 2, 3")})};
  node_process tls_w2{write_node_toml(dir, {"tw2", "worker", tw2, 0,
                                            worker_extra("4, 5, 6, 7")})};
  node_process tls_router{
    write_node_toml(dir, {"tr", "router", tr, 0, router_extra({tw1, tw2})})};
  node_process plain_w{write_node_toml(
    dir, {"pw", "worker", pw, 0, worker_extra("0, 1, 2, 3, 4, 5, 6, 7"),
          tiny_mixtral_dir(), insecure_security_toml})};
  node_process plain_router{
    write_node_toml(dir, {"pr", "router", pr, 0, router_extra({pw}),
                          tiny_mixtral_dir(), insecure_security_toml})};
  CAF_REQUIRE(tls_router.wait_ready());
  CAF_REQUIRE(plain_router.wait_ready());
  for (auto prompt : {std::string{"203"}, long_prompt(17)}) {
    auto over_tls = run_generate({"--connect", connect_to(tr)}, prompt, 10,
                                 {"--all-logits"});
    auto plain = run_generate({"--connect", connect_to(pr)}, prompt, 10,
                              {"--all-logits"}, {});
    CAF_REQUIRE_EQUAL(over_tls.exit_code, 0);
    CAF_REQUIRE_EQUAL(plain.exit_code, 0);
    CAF_CHECK_EQUAL(without_timings(over_tls.out), without_timings(plain.out));
    CAF_CHECK_EQUAL(
      without_timings(over_tls.out),
      without_timings(run_generate({"--model", tiny_mixtral_dir()}, prompt, 10,
                                   {"--all-logits"})
                        .out));
  }
  for (auto* node : {&tls_w1, &tls_w2, &tls_router})
    CAF_CHECK(node->wait_log("use mutual TLS: certificate /CN=node",
                             std::chrono::seconds{5}));
  for (auto* node : {&plain_w, &plain_router})
    CAF_CHECK(node->wait_log("WARN  node: [security] insecure = true: node "
                             "links on port",
                             std::chrono::seconds{5}));
  // No node refused anything along the way.
  for (auto* node : {&tls_w1, &tls_w2, &tls_router, &plain_w, &plain_router})
    CAF_CHECK_EQUAL(node->log().find("rejected connection"), std::string::npos);
  CAF_CHECK_EQUAL(tls_router.stop(), 0);
  CAF_CHECK_EQUAL(tls_w1.stop(), 0);
}

CAF_TEST(a TLS node opens no plaintext port and its HTTP API stays HTTP) {
  temp_dir dir;
  auto port = free_port(), metrics = free_port(), http = free_port();
  node_process node{
    write_node_toml(dir, {"s", "standalone", port, metrics,
                          "[http]\nport = " + std::to_string(http) + "\n"})};
  CAF_REQUIRE(node.wait_ready());
  auto ports = listening_ports(node.pid());
  CAF_MESSAGE("the node listens on " << caf::deep_to_string(ports));
  // The public port, the middleman's loopback port, metrics and HTTP.
  CAF_CHECK_EQUAL(ports.size(), 4u);
  CAF_CHECK_EQUAL(ports.count(port), 1u);
  for (auto p : ports) {
    if (p == metrics || p == http)
      continue;
    // Each CAF port, the loopback one behind the guard included, speaks TLS
    // only: a plaintext CAF client is refused, a client with a certificate
    // of the cluster's CA gets in.
    CAF_CHECK_NOT_EQUAL(try_link(p, false), caf::error{});
    CAF_CHECK_EQUAL(try_link(p, true), caf::error{});
  }
  auto health = http_get(http, "/health");
  CAF_CHECK_EQUAL(health.rfind("HTTP/1.1 200", 0), 0u);
  CAF_CHECK_EQUAL(http_get(metrics, "/metrics").rfind("HTTP/1.1 200", 0), 0u);
  auto r = run_generate({"--connect", connect_to(port)}, "203", 4);
  CAF_CHECK_EQUAL(r.exit_code, 0);
}

CAF_TEST(clients without a certificate of the CA are refused and logged once) {
  temp_dir dir;
  auto port = free_port(), metrics = free_port();
  node_process node{
    write_node_toml(dir, {"s", "standalone", port, metrics, ""})};
  CAF_REQUIRE(node.wait_ready());
  const auto& certs = test_certs::get();
  // Every kind of stranger three times: the node logs each kind once.
  for (int i = 0; i < 3; ++i) {
    auto plain = run_generate({"--connect", connect_to(port)}, "203", 2, {},
                              {});
    check_bad_input(plain, {"cannot connect to the Volt node at 127.0.0.1:",
                            "it may require mutual TLS"});
    auto rogue = run_generate({"--connect", connect_to(port)}, "203", 2, {},
                              rogue_client_env());
    CAF_CHECK_EQUAL(rogue.exit_code, 2);
    CAF_CHECK_NOT_EQUAL(rogue.err.find("TLS handshake failed: the node's "
                                       "certificate does not verify against "
                                       "tls_ca"),
                        std::string::npos);
    // Clients that are not CAF: OpenSSL's, without a certificate, and with
    // one of another CA while trusting this one.
    openssl_client(port);
    openssl_client(port, certs.rogue("node.pem"), certs.rogue("node-key.pem"));
  }
  auto on_port = " on port " + std::to_string(port) + ": ";
  const std::string causes[] = {
    "a CAF client without TLS; this node accepts only mutual TLS",
    "TLS handshake failed: it refused this side's certificate or handshake "
    "(TLS alert 'unknown CA'",
    "TLS handshake failed: it sent no certificate",
    "TLS handshake failed: its certificate does not verify against tls_ca: "
    "unable to get local issuer certificate",
  };
  for (const auto& cause : causes) {
    auto want = on_port + cause;
    if (node.wait_log(want, std::chrono::seconds{10}))
      CAF_CHECK_EQUAL(count_lines(node.log(), want), 1u);
    else
      CAF_FAIL("no line '" << want << "'");
  }
  // Every refusal is counted, logged or not (the last may still be on its
  // way from the middleman to the guard).
  const std::string counts[] = {
    "voltinfer_rejected_connections_total{node=\"s\",reason=\"plaintext\"} 3",
    "voltinfer_rejected_connections_total{node=\"s\",reason=\"tls\"} 9"};
  std::string text;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  do {
    text = http_get(metrics, "/metrics");
    if (text.find(counts[0]) != std::string::npos
        && text.find(counts[1]) != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  } while (std::chrono::steady_clock::now() < deadline);
  for (const auto& want : counts)
    if (text.find(want) == std::string::npos)
      CAF_FAIL("metrics lack '" << want << "':\n" << text);
  // The node serves its own clients all along.
  auto r = run_generate({"--connect", connect_to(port)}, "203", 6);
  CAF_REQUIRE_EQUAL(r.exit_code, 0);
  CAF_CHECK_EQUAL(without_timings(r.out),
                  without_timings(standalone_json("203", 6)));
}

namespace {

/// Whether the worker with /metrics on `metrics_port` has computed any
/// expert rows.
bool computed_rows(uint16_t metrics_port) {
  std::istringstream lines{http_get(metrics_port, "/metrics")};
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("voltinfer_expert_rows_total{", 0) == 0
        && line.substr(line.rfind(' ') + 1) != "0")
      return true;
  return false;
}

} // namespace

CAF_TEST(refused peers do not cut the links of others) {
  // A failed handshake leaves an error in OpenSSL's per-thread queue; if it
  // stayed there, the next read without data on any other link of the
  // node's middleman thread would count as failed (net/tls_watch.cpp).
  temp_dir dir;
  auto model = write_deep_model(dir);
  auto w = free_port(), r = free_port(), r_metrics = free_port();
  node_process worker{write_node_toml(
    dir, {"w", "worker", w, 0, worker_extra("0, 1, 2, 3, 4, 5, 6, 7"), model})};
  node_process router{write_node_toml(dir, {"router", "router", r, r_metrics,
                                            router_extra({w}), model})};
  CAF_REQUIRE(router.wait_ready());
  auto want = without_timings(standalone_json(long_prompt(40), 400, model));
  child_process client{{volt_node_binary(), "generate", "--connect",
                        connect_to(r), "--prompt-ids", long_prompt(40),
                        "--max-new-tokens", "400", "--ignore-eos", "--json"},
                       client_tls_env()};
  CAF_REQUIRE(wait_peer_traffic(r_metrics));
  // Strangers at both nodes while rows flow between them and to the client.
  const auto& certs = test_certs::get();
  for (int i = 0; i < 3; ++i)
    for (auto port : {r, w}) {
      run_generate({"--connect", connect_to(port)}, "203", 2, {},
                   rogue_client_env());
      openssl_client(port);
      openssl_client(port, certs.rogue("node.pem"),
                     certs.rogue("node-key.pem"));
    }
  CAF_REQUIRE_EQUAL(client.wait(std::chrono::seconds{120}), 0);
  CAF_CHECK_EQUAL(without_timings(client.out()), want);
  CAF_CHECK_EQUAL(router.log().find("is down"), std::string::npos);
}

CAF_TEST(a rogue router can neither spawn experts nor use a worker) {
  temp_dir dir;
  auto bare = free_port(), full = free_port(), full_metrics = free_port();
  node_process bare_worker{
    write_node_toml(dir, {"bare", "worker", bare, 0, ""})};
  node_process full_worker{write_node_toml(
    dir, {"full", "worker", full, full_metrics, worker_extra("4, 5, 6, 7")})};
  CAF_REQUIRE(bare_worker.wait_ready());
  CAF_REQUIRE(full_worker.wait_ready());
  auto placement = "placement = [{node = \"127.0.0.1:" + std::to_string(bare)
                   + "\", experts = [0, 1, 2, 3]}]\n";
  auto rogue_at = free_port();
  {
    // A router with a certificate of another CA, and one without TLS.
    node_process rogue{write_node_toml(
      dir, {"rogue", "router", rogue_at, 0, router_extra({full}, placement),
            tiny_mixtral_dir(), rogue_security_toml()})};
    for (auto* worker : {&bare_worker, &full_worker})
      CAF_CHECK(worker->wait_log("TLS handshake failed: it refused this "
                                 "side's certificate",
                                 std::chrono::seconds{30}));
    CAF_CHECK(rogue.wait_log("the node's certificate does not verify against "
                             "tls_ca",
                             std::chrono::seconds{10}));
    node_process plain{write_node_toml(
      dir, {"plain", "router", free_port(), 0, router_extra({full}, placement),
            tiny_mixtral_dir(), insecure_security_toml})};
    for (auto* worker : {&bare_worker, &full_worker})
      CAF_CHECK(
        worker->wait_log("a CAF client without TLS", std::chrono::seconds{30}));
    CAF_CHECK_EQUAL(rogue.log().find("ready:"), std::string::npos);
    CAF_CHECK_EQUAL(plain.log().find("ready:"), std::string::npos);
  }
  CAF_CHECK_EQUAL(bare_worker.log().find("spawned experts"), std::string::npos);
  CAF_CHECK(!computed_rows(full_metrics));
  // The cluster's own router gets both: the bare worker spawns its experts,
  // the other computes rows.
  auto r = free_port();
  node_process router{write_node_toml(dir, {"router", "router", r, 0,
                                            router_extra({full}, placement)})};
  CAF_REQUIRE(router.wait_ready());
  CAF_CHECK(bare_worker.wait_log("spawned experts 0, 1, 2, 3",
                                 std::chrono::seconds{10}));
  auto answer = run_generate({"--connect", connect_to(r)}, "203", 6);
  CAF_REQUIRE_EQUAL(answer.exit_code, 0);
  CAF_CHECK_EQUAL(without_timings(answer.out),
                  without_timings(standalone_json("203", 6)));
  CAF_CHECK(computed_rows(full_metrics));
}

CAF_TEST(bad TLS settings stop a node with one line and exit code 2) {
  temp_dir dir;
  const auto& certs = test_certs::get();
  auto run = [&](const std::string& security) {
    auto file = write_node_toml(dir, {"bad", "standalone", free_port(), 0, "",
                                      tiny_mixtral_dir(), security});
    return run_process({volt_node_binary(), "--config", file});
  };
  auto files = [&](const std::string& cert, const std::string& key,
                   const std::string& ca) {
    return "[security]\ntls_cert = \"" + cert + "\"\ntls_key = \"" + key
           + "\"\ntls_ca = \"" + ca + "\"\n";
  };
  auto cert = certs.file("node.pem"), key = certs.file("node-key.pem"),
       ca = certs.file("ca.pem");
  check_bad_input(run(""), {"bad.toml: [security] tls_cert, tls_key and "
                            "tls_ca: not set, and insecure is not true",
                            "scripts/make_certs.sh"});
  check_bad_input(run(files(dir.file("none.pem"), key, ca)),
                  {"bad.toml: [security] tls_cert: ", "none.pem: cannot open "
                                                      "(No such file or "
                                                      "directory)"});
  check_bad_input(run(files(cert, dir.path(), ca)),
                  {"[security] tls_key: ", "cannot read (is a directory)"});
  auto garbage = dir.file("garbage.pem");
  write_text(garbage, "-----BEGIN PRIVATE KEY-----\nnot base64\n");
  check_bad_input(run(files(cert, garbage, ca)),
                  {"[security] tls_key: ", "garbage.pem: not a PEM private "
                                           "key"});
  auto encrypted = dir.file("encrypted.pem");
  CAF_REQUIRE_EQUAL(run_process({"/usr/bin/openssl", "pkey", "-in", key,
                                 "-aes256", "-passout", "pass:secret", "-out",
                                 encrypted})
                      .exit_code,
                    0);
  check_bad_input(run(files(cert, encrypted, ca)),
                  {"[security] tls_key: ", "the key is encrypted"});
  check_bad_input(run(files(cert, certs.file("client-key.pem"), ca)),
                  {"[security] tls_key: ", "client-key.pem: does not belong to "
                                           "the certificate in"});
  check_bad_input(
    run(files(certs.rogue("node.pem"), certs.rogue("node-key.pem"), ca)),
    {"[security] tls_cert: ", "does not verify against the CA in",
     "unable to get local issuer certificate"});
  check_bad_input(run(files(cert, key, garbage)),
                  {"[security] tls_ca: ", "no PEM certificate in it"});
  check_bad_input(run("[security]\ntls_cert = \"" + cert + "\"\n"),
                  {"bad.toml: [security] tls_key and tls_ca: missing (tls_cert "
                   "is set"});
  check_bad_input(run(files(cert, key, ca) + "insecure = true\n"),
                  {"bad.toml: [security] insecure: true while tls_cert, "
                   "tls_key and tls_ca are set"});
  check_bad_input(run("[security]\ninsecure = \"yes\"\n"),
                  {"bad.toml", "[security] insecure", "expected a boolean"});
}

CAF_TEST(bad TLS settings stop a client with one line and exit code 2) {
  const auto& certs = test_certs::get();
  auto connect = std::vector<std::string>{"--connect", "127.0.0.1:1",
                                          "--prompt-ids", "1"};
  auto with = [&](std::vector<std::string> more) {
    auto flags = connect;
    flags.insert(flags.end(), more.begin(), more.end());
    return flags;
  };
  check_bad_input(generate(with({"--tls-cert", certs.file("client.pem")})),
                  {"--tls-key and --tls-ca: missing (--tls-cert is given",
                   "each flag may also come from VOLT_SECURITY_TLS_CERT, _KEY "
                   "or _CA"});
  check_bad_input(
    generate(with({"--tls-cert", certs.file("client.pem")}),
             {"VOLT_SECURITY_TLS_KEY=" + certs.file("client-key.pem")}),
    {"--tls-ca: missing (--tls-cert and VOLT_SECURITY_TLS_KEY are given"});
  check_bad_input(generate({"--model", tiny_mixtral_dir(), "--prompt-ids", "1",
                            "--tls-ca", certs.file("ca.pem")}),
                  {"--tls-ca: only with --connect"});
  check_bad_input(generate(connect, {"VOLT_SECURITY_INSECURE=yes"}),
                  {"environment: VOLT_SECURITY_INSECURE: expected true or "
                   "false (or 1 or 0), got \"yes\""});
  check_bad_input(generate(with({"--tls-cert", certs.file("client.pem"),
                                 "--tls-key", certs.file("node-key.pem"),
                                 "--tls-ca", certs.file("ca.pem")})),
                  {"--tls-key: ", "does not belong to the certificate in"});
  check_bad_input(generate(connect, {"VOLT_SECURITY_TLS_CERT=/nonexistent",
                                     "VOLT_SECURITY_TLS_KEY=/nonexistent",
                                     "VOLT_SECURITY_TLS_CA=/nonexistent"}),
                  {"environment: VOLT_SECURITY_TLS_CERT: /nonexistent: cannot "
                   "open"});
}
