#pragma once

// Real clients for the autoscaler's tests: threads that POST greedy
// completions to a node's HTTP API again and again and compare every answer
// with the standalone answer for its prompt.

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "model/json.hpp"
#include "tests/cluster.hpp"

namespace volt::test {

/// Prompts the clients take turns with, and what a standalone node answers
/// to each (greedy, EOS ignored).
struct reference_answers {
  int new_tokens = 16;
  std::vector<std::vector<int>> prompts;
  std::vector<std::vector<int64_t>> tokens;
};

/// `n` prompts of 8 varied tokens and their answers from `volt-node
/// generate --model` (empty tokens when a run failed, which fails the
/// comparisons).
inline reference_answers make_reference(int n, int new_tokens) {
  reference_answers ref;
  ref.new_tokens = new_tokens;
  for (int p = 0; p < n; ++p) {
    std::vector<int> prompt;
    std::string csv;
    for (int i = 0; i < 8; ++i) {
      prompt.push_back((p * 53 + i * 37 + 11) % 320);
      csv += (i > 0 ? "," : "") + std::to_string(prompt.back());
    }
    auto doc = json::parse(standalone_json(csv, new_tokens), "reference");
    std::vector<int64_t> tokens;
    auto found = doc ? json::find(*doc, "new_tokens") : nullptr;
    if (found != nullptr && found->is_array())
      for (const auto& t : *found)
        tokens.push_back(t.get<int64_t>());
    ref.prompts.push_back(std::move(prompt));
    ref.tokens.push_back(std::move(tokens));
  }
  return ref;
}

/// `clients` threads, each POSTing /v1/completions to 127.0.0.1:port until
/// stop(), taking the prompts in turn; counts answers equal to the
/// reference, different ones and failures.
class reference_load {
public:
  reference_load(uint16_t port, const reference_answers& ref, int clients)
    : ref_(ref) {
    for (int i = 0; i < clients; ++i)
      threads_.emplace_back([this, port, i] { run(port, i); });
  }

  ~reference_load() {
    stop();
  }

  reference_load(const reference_load&) = delete;
  reference_load& operator=(const reference_load&) = delete;

  /// Lets every client finish its request and joins them.
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
  }

  /// Answers equal to the reference.
  int ok() const {
    return ok_;
  }

  /// Requests that failed or whose tokens differ.
  int bad() const {
    return bad_;
  }

  std::string last_problem() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return last_problem_;
  }

private:
  void run(uint16_t port, int index) {
    httplib::Client client{"127.0.0.1", port};
    client.set_read_timeout(120, 0);
    for (size_t n = static_cast<size_t>(index); !stop_; ++n) {
      auto which = n % ref_.prompts.size();
      json::value body = {{"prompt", ref_.prompts[which]},
                          {"max_tokens", ref_.new_tokens},
                          {"temperature", 0},
                          {"ignore_eos", true}};
      auto res = client.Post("/v1/completions", json::dump(body),
                             "application/json");
      std::string problem;
      if (!res) {
        problem = "no answer: " + httplib::to_string(res.error());
      } else if (res->status != 200) {
        problem = "status " + std::to_string(res->status) + ": " + res->body;
      } else {
        auto doc = json::parse(res->body, "completion");
        std::vector<int64_t> tokens;
        if (doc)
          for (const auto& t : (*doc)["choices"][0]["token_ids"])
            tokens.push_back(t.get<int64_t>());
        if (tokens != ref_.tokens[which])
          problem = "prompt " + std::to_string(which)
                    + " answered differently: " + res->body;
      }
      if (problem.empty()) {
        ++ok_;
        continue;
      }
      ++bad_;
      std::lock_guard<std::mutex> guard{mtx_};
      last_problem_ = problem;
    }
  }

  const reference_answers& ref_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0};
  std::atomic<int> bad_{0};
  mutable std::mutex mtx_;
  std::string last_problem_;
  std::vector<std::thread> threads_;
};

/// Sum of the values of the series in Prometheus text `text` whose line
/// starts with `prefix` (a name and the start of its labels).
inline double metric_sum(const std::string& text, const std::string& prefix) {
  double sum = 0;
  size_t at = 0;
  while ((at = text.find(prefix, at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') {
      auto end = text.find('\n', at);
      auto line = text.substr(at, end - at);
      sum += std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
    }
    at += prefix.size();
  }
  return sum;
}

} // namespace volt::test
