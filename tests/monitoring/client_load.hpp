#pragma once

// Keeps a node busy with real clients for as long as a test watches it.

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/cluster.hpp"

namespace volt::test {

/// `clients` threads, each running `volt-node generate --connect` against
/// 127.0.0.1:port again and again until stop() or destruction. Every request
/// has the same 40-token prompt, so that later ones reuse its KV pages from
/// the prefix cache.
class client_load {
public:
  client_load(uint16_t port, int clients) {
    for (int i = 0; i < clients; ++i)
      threads_.emplace_back([this, port] { run(port); });
  }

  ~client_load() {
    stop();
  }

  client_load(const client_load&) = delete;
  client_load& operator=(const client_load&) = delete;

  /// Lets every client finish its request and joins them.
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
  }

  int succeeded() const {
    return ok_;
  }

  int failed() const {
    return failed_;
  }

  /// The stderr of the last failed client.
  std::string last_error() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return last_error_;
  }

private:
  void run(uint16_t port) {
    while (!stop_) {
      auto r = run_process({volt_node_binary(), "generate", "--connect",
                            "127.0.0.1:" + std::to_string(port), "--prompt-ids",
                            long_prompt(40), "--max-new-tokens", "8",
                            "--ignore-eos"},
                           std::chrono::seconds{60}, client_tls_env());
      if (r.exit_code == 0) {
        ++ok_;
      } else {
        ++failed_;
        std::lock_guard<std::mutex> guard{mtx_};
        last_error_ = r.err;
      }
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0};
  std::atomic<int> failed_{0};
  mutable std::mutex mtx_;
  std::string last_error_;
  std::vector<std::thread> threads_;
};

} // namespace volt::test
