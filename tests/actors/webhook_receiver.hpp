#pragma once

// A real webhook for the autoscaler's tests: cpp-httplib's server on a free
// loopback port, keeping every POSTed event; it can answer slowly or be
// stopped to play a webhook that is down.

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "model/json.hpp"

namespace volt::test {

class webhook_receiver {
public:
  /// Answers each POST after `delay` (longer than the autoscaler's
  /// webhook_timeout_ms: a slow webhook).
  explicit webhook_receiver(std::chrono::milliseconds delay = {})
    : delay_(delay) {
    server_.Post(".*", [this](const httplib::Request& req,
                              httplib::Response& res) {
      {
        std::lock_guard<std::mutex> guard{mtx_};
        posts_.push_back(
          {req.path, req.get_header_value("Content-Type"), req.body});
      }
      if (delay_.count() > 0)
        std::this_thread::sleep_for(delay_);
      res.set_content("{}", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread{[this] { server_.listen_after_bind(); }};
  }

  ~webhook_receiver() {
    server_.stop();
    if (thread_.joinable())
      thread_.join();
  }

  webhook_receiver(const webhook_receiver&) = delete;
  webhook_receiver& operator=(const webhook_receiver&) = delete;

  /// http://127.0.0.1:PORT/<path>
  std::string url(const std::string& path = "/hooks/volt") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  struct post {
    std::string path;
    std::string content_type;
    std::string body;
  };

  std::vector<post> posts() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return posts_;
  }

  /// The bodies POSTed with "action" `action`, parsed.
  std::vector<json::value> events(const std::string& action) const {
    std::vector<json::value> out;
    for (const auto& p : posts()) {
      auto doc = json::parse(p.body, "webhook event");
      if (doc && json::find(*doc, "action") != nullptr
          && (*doc)["action"] == action)
        out.push_back(std::move(*doc));
    }
    return out;
  }

  /// Waits until `n` POSTs with "action" `action` came in.
  bool wait_for(const std::string& action, size_t n,
                std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (events(action).size() < n) {
      if (std::chrono::steady_clock::now() >= deadline)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
    return true;
  }

private:
  std::chrono::milliseconds delay_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mtx_;
  std::vector<post> posts_;
};

} // namespace volt::test
