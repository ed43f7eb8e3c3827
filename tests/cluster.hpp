#pragma once

// Helpers for multi-process tests: real volt-node processes (router, workers,
// standalone) and real redis-server processes on loopback, with free ports
// from the OS and bounded waits everywhere. Node links use mutual TLS unless a
// test asks for plaintext: certificates come from scripts/make_certs.sh, run
// once per test process.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "model/json.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/process.hpp"

namespace volt::test {

/// Whether nothing on this machine holds `port` (bound on every address,
/// without SO_REUSEADDR, so a port with lingering connections counts as held).
inline bool port_is_free(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(port);
  bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return free;
}

/// A TCP port that was free a moment ago, for a node to listen on.
///
/// Taken from 10000-32767, below Linux's ephemeral range (32768-60999): a port
/// the kernel handed out for bind(0) can go to another test process's outgoing
/// connection before our node binds it, and then the node exits with "address
/// in use". Each test process walks the range from its own random start, so
/// parallel suites rarely meet, and never reuses a port.
inline uint16_t free_port() {
  constexpr uint32_t first = 10000, count = 32768 - first;
  static std::mutex mtx;
  static uint32_t next = [] {
    std::random_device entropy;
    return (entropy() ^ static_cast<uint32_t>(getpid())) % count;
  }();
  std::lock_guard<std::mutex> lock{mtx};
  for (uint32_t tries = 0; tries < count; ++tries) {
    auto port = static_cast<uint16_t>(first + next);
    next = (next + 1) % count;
    if (port_is_free(port))
      return port;
  }
  return 0; // nothing free: the node's bind error names the port
}

/// A blocking TCP connection to 127.0.0.1:port (-1 when refused).
inline int tcp_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/// Sends `bytes` to 127.0.0.1:port, reads until the peer closes or `timeout`
/// passes, and returns what came back ("" when the connection failed).
inline std::string tcp_exchange(uint16_t port, const std::string& bytes,
                                std::chrono::milliseconds timeout
                                = std::chrono::milliseconds{2000}) {
  int fd = tcp_connect(port);
  if (fd < 0)
    return {};
  (void)!send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string reply;
  char buf[4096];
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0)
      continue;
    auto n = read(fd, buf, sizeof(buf));
    if (n <= 0)
      break;
    reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return reply;
}

/// GET http://127.0.0.1:port/path; returns the whole response.
inline std::string http_get(uint16_t port, const std::string& path) {
  return tcp_exchange(port,
                      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
}

/// The body of an HTTP response ("" without one).
inline std::string http_body(const std::string& response) {
  auto pos = response.find("\r\n\r\n");
  return pos == std::string::npos ? std::string{} : response.substr(pos + 4);
}

/// The Prometheus text a node serves on `metrics_port`.
inline std::string metrics_text(uint16_t metrics_port) {
  return http_body(http_get(metrics_port, "/metrics"));
}

/// Waits until the node serving /metrics on `metrics_port` has sent expert
/// rows to a peer: a request is then in flight on it. Tests that stop a node
/// mid-request wait for this rather than a fixed time, which a slow machine
/// can outlast before the client has even connected.
inline bool wait_peer_traffic(uint16_t metrics_port,
                              std::chrono::milliseconds timeout
                              = std::chrono::seconds{30}) {
  const std::string name = "voltinfer_peer_bytes_sent_total{";
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto text = http_get(metrics_port, "/metrics");
    for (auto at = text.find(name); at != std::string::npos;
         at = text.find(name, at + 1)) {
      auto value = text.find("} ", at);
      if (value != std::string::npos && text.compare(value + 2, 2, "0\n") != 0)
        return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  std::cerr << "no expert rows left the node with metrics on port "
            << metrics_port << std::endl;
  return false;
}

/// How often `text` occurs in `log` (lines, for a log's fragments).
inline size_t count_lines(const std::string& log, const std::string& text) {
  size_t n = 0;
  for (auto at = log.find(text); at != std::string::npos;
       at = log.find(text, at + text.size()))
    ++n;
  return n;
}

/// Certificates made once per test process by scripts/make_certs.sh: the
/// cluster's CA with a "node" and a "client" certificate, and a second,
/// unrelated CA ("rogue") with its own "node" certificate.
class test_certs {
public:
  static const test_certs& get() {
    static const test_certs instance;
    return instance;
  }

  /// The cluster's files: "ca.pem", "node.pem", "node-key.pem", "client.pem",
  /// "client-key.pem".
  std::string file(const std::string& name) const {
    return dir_.file("cluster/" + name);
  }

  /// The other CA's files, same names.
  std::string rogue(const std::string& name) const {
    return dir_.file("rogue/" + name);
  }

private:
  test_certs() {
    auto script = std::string{VOLT_TEST_DATA_DIR}
                  + "/../../scripts/make_certs.sh";
    for (auto [sub, names] : {std::pair<const char*, std::vector<std::string>>{
                                "cluster", {"node", "client"}},
                              {"rogue", {"node"}}}) {
      std::vector<std::string> argv{"/bin/bash", script, dir_.file(sub)};
      argv.insert(argv.end(), names.begin(), names.end());
      auto made = run_process(argv, std::chrono::seconds{60});
      if (made.exit_code != 0) {
        std::cerr << "scripts/make_certs.sh failed: " << made.err << std::endl;
        std::abort();
      }
    }
  }

  temp_dir dir_;
};

/// The [security] section of a node with mutual TLS, `name`'s certificate
/// and the cluster's CA.
inline std::string tls_security_toml(const std::string& name = "node") {
  const auto& certs = test_certs::get();
  return "[security]\ntls_cert = \"" + certs.file(name + ".pem")
         + "\"\ntls_key = \"" + certs.file(name + "-key.pem")
         + "\"\ntls_ca = \"" + certs.file("ca.pem") + "\"\n";
}

/// The [security] section of a node with plaintext links.
inline const std::string insecure_security_toml
  = "[security]\ninsecure = true\n";

/// The environment of a client (volt-node generate --connect, bench) with
/// the cluster's client certificate.
inline std::vector<std::string> client_tls_env() {
  const auto& certs = test_certs::get();
  return {"VOLT_SECURITY_TLS_CERT=" + certs.file("client.pem"),
          "VOLT_SECURITY_TLS_KEY=" + certs.file("client-key.pem"),
          "VOLT_SECURITY_TLS_CA=" + certs.file("ca.pem")};
}

/// A volt-node process running from a TOML file.
class node_process {
public:
  node_process(const std::string& config_file,
               std::vector<std::string> env = {})
    : child_(std::make_unique<child_process>(
      std::vector<std::string>{volt_node_binary(), "--config", config_file},
      std::move(env))) {}

  /// Waits for the line containing "ready"; without it, prints the node's log
  /// so that a failed run says why.
  bool
  wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds{30}) {
    return wait_log("ready", timeout);
  }

  /// Waits for a log line containing `text`; without it, prints the node's
  /// log so that a failed run says why.
  bool wait_log(const std::string& text, std::chrono::milliseconds timeout) {
    if (child_->wait_for_stderr(text, timeout))
      return true;
    std::cerr << "volt-node never logged '" << text << "'; its log:\n"
              << child_->err() << std::endl;
    return false;
  }

  void signal(int sig) {
    child_->signal(sig);
  }

  /// Reads what the node logs for `duration`, so that log() includes it.
  void read_log(std::chrono::milliseconds duration) {
    child_->wait_for_stderr(std::string(1, '\0'), duration);
  }

  /// Waits for the node to exit by itself; returns its exit code (-1 when it
  /// had to be killed after `timeout`).
  int wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds{20}) {
    return child_->wait(timeout);
  }

  int stop(int sig = SIGTERM) {
    child_->signal(SIGCONT); // a frozen node must run to handle the signal
    child_->signal(sig);
    return child_->wait(std::chrono::seconds{20});
  }

  const std::string& log() const {
    return child_->err();
  }

  pid_t pid() const {
    return child_->pid();
  }

private:
  std::unique_ptr<child_process> child_;
};

/// A private redis-server on a free loopback port, stopped on destruction.
class redis_process {
public:
  /// `extra` are more redis-server flags, e.g. {"--requirepass", "x"}.
  explicit redis_process(uint16_t port = 0,
                         std::vector<std::string> extra = {})
    : port_(port ? port : free_port()), extra_(std::move(extra)) {
    start();
  }

  ~redis_process() {
    stop();
  }

  void start() {
    std::vector<std::string> argv{"/usr/bin/redis-server",
                                  "--port",
                                  std::to_string(port_),
                                  "--bind",
                                  "127.0.0.1",
                                  "--save",
                                  "",
                                  "--appendonly",
                                  "no"};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    child_ = std::make_unique<child_process>(argv);
    child_->wait_for_stdout("Ready to accept connections",
                            std::chrono::seconds{10});
  }

  void stop() {
    if (child_) {
      child_->signal(SIGKILL);
      child_->wait(std::chrono::seconds{5});
      child_.reset();
    }
  }

  uint16_t port() const {
    return port_;
  }

  std::string url() const {
    return "redis://127.0.0.1:" + std::to_string(port_);
  }

private:
  uint16_t port_;
  std::vector<std::string> extra_;
  std::unique_ptr<child_process> child_;
};

/// Text of a node's TOML file.
struct node_toml {
  std::string id;
  std::string role;
  uint16_t port = 0;
  uint16_t metrics_port = 0;
  std::string extra; // more sections, verbatim
  std::string model = tiny_mixtral_dir();
  /// The [security] section: mutual TLS with the test certificates, unless a
  /// test wants plaintext (insecure_security_toml) or other files.
  std::string security = tls_security_toml();

  std::string render() const {
    return "[node]\nid = \"" + id + "\"\nrole = \"" + role
           + "\"\n[network]\nhost = \"127.0.0.1\"\nport = "
           + std::to_string(port)
           + "\npeer_timeout_ms = 1000\n[model]\npath = \"" + model
           + "\"\n[metrics]\nport = " + std::to_string(metrics_port) + "\n"
           + extra + security;
  }
};

/// Writes `cfg` as <dir>/<id>.toml and returns the path.
inline std::string write_node_toml(const temp_dir& dir, const node_toml& cfg) {
  auto path = dir.file(cfg.id + ".toml");
  write_text(path, cfg.render());
  return path;
}

/// A router ("router") and one worker ("w") hosting every expert of the tiny
/// model, each with a /metrics endpoint: the smallest cluster that exports the
/// expert, peer traffic and live worker metrics besides the engine's.
struct metered_cluster {
  uint16_t worker_port = free_port();
  uint16_t worker_metrics = free_port();
  uint16_t router_port = free_port();
  uint16_t router_metrics = free_port();
  node_process worker;
  node_process router;

  explicit metered_cluster(const temp_dir& dir)
    : worker(write_node_toml(
      dir, {"w", "worker", worker_port, worker_metrics,
            "[worker]\nexperts = [0, 1, 2, 3, 4, 5, 6, 7]\n"})),
      router(write_node_toml(dir, {"router", "router", router_port,
                                   router_metrics,
                                   "[router]\nworkers = [\"127.0.0.1:"
                                     + std::to_string(worker_port) + "\"]\n"})) {
  }

  /// Waits until both nodes serve.
  bool wait_ready() {
    return worker.wait_ready() && router.wait_ready();
  }
};

/// The JSON of `volt-node generate --json` with the given source flags; with
/// --connect the client has the test client certificate in its environment
/// unless `env` says otherwise (a plaintext client passes {}).
inline run_result
run_generate(std::vector<std::string> source, const std::string& prompt,
             int new_tokens, std::vector<std::string> more = {},
             std::vector<std::string> env = client_tls_env()) {
  std::vector<std::string> argv{volt_node_binary(), "generate"};
  argv.insert(argv.end(), source.begin(), source.end());
  for (std::string x :
       {std::string{"--prompt-ids"}, prompt, std::string{"--max-new-tokens"},
        std::to_string(new_tokens), std::string{"--json"},
        std::string{"--ignore-eos"}})
    argv.push_back(x);
  argv.insert(argv.end(), more.begin(), more.end());
  auto result = run_process(argv, std::chrono::seconds{120}, env);
  // Most tests require success: say why the client failed, in the test log.
  if (result.exit_code != 0)
    std::cerr << "volt-node generate exited with " << result.exit_code
              << "; its stderr:\n"
              << result.err << std::endl;
  return result;
}

/// The standalone answer for a prompt: what every cluster must reproduce.
inline std::string
standalone_json(const std::string& prompt, int new_tokens,
                const std::string& model = tiny_mixtral_dir()) {
  return run_generate({"--model", model}, prompt, new_tokens).out;
}

/// Writes a 16-layer random Mixtral under `dir`/deep and returns its folder:
/// a generation crosses the network 16 times per token, slow enough that a
/// test can freeze or kill a worker while rows are surely in flight.
inline std::string write_deep_model(const temp_dir& dir) {
  auto cfg = small_model_config(320, 64, 96, 16, 4, 2, 16, 8, 2);
  auto path = dir.subdir("deep");
  write_checkpoint(path, config_json(cfg),
                   random_mixtral_tensors(cfg, 5, 0.3f));
  return path;
}

/// Writes a copy of the tiny fixture under `dir`/other whose experts of
/// layer 0 compute the opposite (every w2 negated): a checkpoint of the same
/// shapes with other weights, which a router must not use.
inline std::string write_other_weights(const temp_dir& dir) {
  auto tensors = copy_tensors(tiny_mixtral_dir());
  const std::string experts = "model.layers.0.block_sparse_moe.experts.";
  const std::string w2 = ".w2.weight";
  for (auto& t : tensors) {
    if (t.name.rfind(experts, 0) != 0
        || t.name.compare(t.name.size() - w2.size(), w2.size(), w2) != 0)
      continue;
    // The sign bit is the top bit of each little-endian element's last byte.
    auto size = dtype_size(t.type);
    for (size_t i = size - 1; i < t.bytes.size(); i += size)
      t.bytes[i] ^= 0x80;
  }
  auto path = dir.subdir("other");
  write_checkpoint(path, read_text(tiny_mixtral_dir() + "/config.json"),
                   tensors);
  return path;
}

/// The fingerprint a node logged for its checkpoint at start ("" if none).
inline std::string logged_fingerprint(const std::string& log) {
  const std::string marker = "has the fingerprint ";
  auto at = log.find(marker);
  return at == std::string::npos ? std::string{}
                                 : log.substr(at + marker.size(), 64);
}

/// Drops the fields of a generate JSON that differ run to run (timings) or
/// between a standalone and a cluster run (KV page use); returns other text
/// unchanged, so a comparison shows it.
inline std::string without_timings(const std::string& text) {
  auto doc = json::parse(text, "generate output");
  if (!doc || !doc->is_object())
    return text;
  for (auto key :
       {"prefill_seconds", "decode_seconds", "decode_tokens_per_second", "kv"})
    doc->erase(key);
  return json::dump(*doc);
}

/// A prompt of `n` varied token ids.
inline std::string long_prompt(int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += (i > 0 ? "," : "") + std::to_string((i * 37 + 11) % 320);
  return out;
}

} // namespace volt::test
