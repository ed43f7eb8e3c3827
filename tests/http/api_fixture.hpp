#pragma once

// Real volt-node processes serving the HTTP API, and curl to talk to them.
// Header-only so that each http suite can include it.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/cluster.hpp"
#include "tests/process.hpp"

namespace volt::test {

/// The model trained on text (tokenizer, reference continuations).
inline std::string text_model() {
  return std::string{VOLT_TEST_DATA_DIR} + "/tiny-mixtral-text-a";
}

/// A standalone (or other role) volt-node with [http] on a free port.
class api_node {
public:
  /// Starts a node of `role` on `model`; `extra` adds TOML, e.g. an [engine]
  /// section or more [http] keys (written after `[http] port`).
  explicit api_node(std::string extra = {}, std::string model = text_model(),
                    std::string role = "standalone")
    : port_(free_port()), http_port_(free_port()) {
    node_toml cfg{"api", std::move(role), port_, 0,
                  "[http]\nport = " + std::to_string(http_port_) + "\n"
                    + extra,
                  std::move(model)};
    node_ = std::make_unique<node_process>(write_node_toml(dir_, cfg));
  }

  /// Waits for the node's "ready" log line (the API is up before it).
  bool wait_ready() {
    return node_->wait_ready(std::chrono::seconds{60});
  }

  /// Waits for the API's start-up line (a router logs "ready" only once its
  /// experts have hosts).
  bool wait_api() {
    return node_->wait_log("OpenAI-compatible API", std::chrono::seconds{60});
  }

  uint16_t http_port() const {
    return http_port_;
  }

  /// http://127.0.0.1:PORT
  std::string base_url() const {
    return "http://127.0.0.1:" + std::to_string(http_port_);
  }

  node_process& process() {
    return *node_;
  }

  const temp_dir& dir() const {
    return dir_;
  }

private:
  temp_dir dir_;
  uint16_t port_;
  uint16_t http_port_;
  std::unique_ptr<node_process> node_;
};

/// What curl got: the status (0 when the connection failed) and the body.
struct http_reply {
  int status = 0;
  std::string body;
  std::string err;
};

/// Runs curl for `method` `url` with `body` (JSON) and returns the reply.
inline http_reply curl(const std::string& method, const std::string& url,
                       const std::string& body = {},
                       std::vector<std::string> more = {}) {
  std::vector<std::string> argv{"/usr/bin/curl", "-sS", "-X", method,
                                "--max-time", "120", "-w", "\n%{http_code}"};
  if (!body.empty()) {
    for (std::string x : {"-H", "Content-Type: application/json",
                          "--data-binary", ""})
      argv.push_back(x);
    argv.back() = body;
  }
  argv.insert(argv.end(), more.begin(), more.end());
  argv.push_back(url);
  auto r = run_process(argv, std::chrono::seconds{150});
  http_reply reply;
  reply.err = r.err;
  auto cut = r.out.rfind('\n');
  if (cut == std::string::npos)
    return reply;
  reply.status = std::atoi(r.out.c_str() + cut + 1);
  reply.body = r.out.substr(0, cut);
  return reply;
}

} // namespace volt::test
