#pragma once

// A real Prometheus server for tests: Debian's binary (scripts/setup.sh
// unpacks it into the build folder), on a free loopback port, with its
// configuration and storage in a temporary folder, asked through its HTTP API.

#include <httplib.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "model/json.hpp"
#include "tests/cluster.hpp"

namespace volt::test {

/// The prometheus binary that scripts/setup.sh unpacks.
inline std::string prometheus_binary() {
  return VOLT_PROMETHEUS;
}

/// An answer of Prometheus' HTTP API: its JSON body, or why there is none.
struct api_answer {
  json::value body;
  std::string error; // empty when `body` holds the answer
};

/// A Prometheus server that scrapes `targets` ("host:port", path /metrics)
/// every second as job "volt" and evaluates `rule_files` every second.
/// Stopped on destruction, also when a test fails midway.
class prometheus_server {
public:
  prometheus_server(const temp_dir& dir, const std::vector<std::string>& targets,
                    const std::vector<std::string>& rule_files) {
    auto config = dir.file("prometheus.yml");
    write_text(config, render_config(targets, rule_files));
    // A free port can be taken before Prometheus binds it: then it exits
    // naming the address, and another port is tried.
    for (int attempt = 0; attempt < 3 && !ready_; ++attempt) {
      port_ = free_port();
      child_ = std::make_unique<child_process>(std::vector<std::string>{
        prometheus_binary(), "--config.file=" + config,
        "--storage.tsdb.path=" + dir.subdir("tsdb-" + std::to_string(attempt)),
        "--web.listen-address=127.0.0.1:" + std::to_string(port_)});
      ready_ = child_->wait_for_stderr("Server is ready to receive web requests",
                                       std::chrono::seconds{30});
      if (!ready_ && child_->err().find("address already in use")
                       == std::string::npos)
        break;
    }
  }

  ~prometheus_server() {
    if (child_) {
      child_->signal(SIGTERM);
      child_->wait(std::chrono::seconds{10}); // kills it after that
    }
  }

  prometheus_server(const prometheus_server&) = delete;
  prometheus_server& operator=(const prometheus_server&) = delete;

  /// Whether the server started and serves its API.
  bool ready() const {
    return ready_;
  }

  /// What Prometheus logged so far (for failure messages).
  const std::string& log() const {
    return child_->err();
  }

  /// GET `path` of the HTTP API with `params`. Prometheus' own errors come
  /// as a body too ({"status":"error","error":...}, HTTP 400 or 422).
  api_answer get(const std::string& path,
                 const httplib::Params& params = {}) const {
    httplib::Client client{"127.0.0.1", port_};
    client.set_connection_timeout(std::chrono::seconds{5});
    client.set_read_timeout(std::chrono::seconds{10});
    auto res = client.Get(path, params, httplib::Headers{});
    if (!res)
      return {{}, "GET " + path + ": " + httplib::to_string(res.error())};
    auto body = json::parse(res->body, "prometheus " + path);
    if (!body)
      return {{}, describe(body.error())};
    return {std::move(*body), {}};
  }

  /// An instant query at the current time (GET /api/v1/query).
  api_answer query(const std::string& promql) const {
    return get("/api/v1/query", {{"query", promql}});
  }

private:
  static std::string render_config(const std::vector<std::string>& targets,
                                   const std::vector<std::string>& rule_files) {
    std::string out = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                      "  evaluation_interval: 1s\nrule_files:\n";
    for (const auto& file : rule_files)
      out += "  - '" + file + "'\n";
    out += "scrape_configs:\n  - job_name: volt\n    static_configs:\n"
           "      - targets:\n";
    for (const auto& target : targets)
      out += "          - '" + target + "'\n";
    return out;
  }

  uint16_t port_ = 0;
  bool ready_ = false;
  std::unique_ptr<child_process> child_;
};

/// The "result" array of a successful query answer, or nullptr.
inline const json::value* query_result(const json::value& answer) {
  auto status = json::find(answer, "status");
  auto data = json::find(answer, "data");
  if (status == nullptr || *status != "success" || data == nullptr)
    return nullptr;
  auto result = json::find(*data, "result");
  return result != nullptr && result->is_array() ? result : nullptr;
}

/// Whether some sample of an instant vector is a finite number (Prometheus
/// writes values as strings, "NaN" and "+Inf" included).
inline bool has_finite_sample(const json::value& result) {
  for (const auto& series : result) {
    auto value = json::find(series, "value");
    if (value == nullptr || !value->is_array() || value->size() != 2
        || !(*value)[1].is_string())
      continue;
    char* end = nullptr;
    auto text = (*value)[1].get<std::string>();
    double x = std::strtod(text.c_str(), &end);
    if (end != text.c_str() && std::isfinite(x))
      return true;
  }
  return false;
}

} // namespace volt::test
