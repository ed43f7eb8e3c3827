#pragma once

#include "model/step.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "caf/expected.hpp"

namespace prometheus {
class Registry;
} // namespace prometheus

namespace volt {

/// Every metric a Volt node exports. The names, types and help texts live in
/// ONE table (metrics.cpp); each member function below updates one row of it.
/// Every series carries the constant label node="<[node] id>". Thread-safe:
/// actors on any thread update it.
class node_metrics {
public:
  explicit node_metrics(const std::string& node_id);
  ~node_metrics();

  node_metrics(const node_metrics&) = delete;
  node_metrics& operator=(const node_metrics&) = delete;

  /// The registry that the /metrics endpoint serialises.
  std::shared_ptr<prometheus::Registry> registry() const;

  /// A generation request ended, after `seconds` from its arrival.
  void request_done(double seconds, bool ok, size_t new_tokens);

  /// A generation request was refused before it was queued (malformed, or
  /// the queue was full): counted with outcome "error", but not in the
  /// latency histogram, which times requests the engine worked on.
  void request_refused();

  /// Requests waiting in the engine's queue (not counting the running one).
  void queue_depth(size_t n);

  /// An expert of `layer` computed `rows` token rows in one batch.
  void expert_batch(uint32_t layer, uint32_t expert, size_t rows);

  /// Payload bytes of tensors sent to / received from `peer` ("host:port").
  void bytes_sent(const std::string& peer, size_t n);
  void bytes_received(const std::string& peer, size_t n);

  /// `n` connections to [network] port closed by the port guard before a
  /// BASP handshake, for `reason` (see net/rejection_log.hpp).
  void connections_rejected(const std::string& reason, uint64_t n);

  /// Workers (remote expert hosts) the engine currently uses.
  void live_workers(size_t n);

  /// Expert work re-sent to another host after its host failed.
  void failover();

  /// A token was generated for an answer that lost one of its experts
  /// (degraded routing).
  void degraded_token();

  /// The KV page pool now: pages in use and in all, and the totals since start
  /// of copy-on-write copies, prefix-cache lookups, hits and evictions.
  void kv_pool(int64_t used, int64_t total, uint64_t copies, uint64_t lookups,
               uint64_t hits, uint64_t hit_tokens, uint64_t evictions);

  /// A sequence was preempted: its KV pages released for others; it resumes
  /// later by recomputation.
  void preemption();

  /// Sequences computed together in one engine step.
  void batch_size(size_t n);

  /// An engine step of `rows` token rows ended after `seconds`, of which
  /// `wait_seconds` went by between sending a layer's rows to expert hosts
  /// on other nodes and having all their answers back. `decode`: every
  /// sequence of the step computed one row.
  void step_done(bool decode, size_t rows, double seconds, double wait_seconds);

  /// An HTTP API request to `endpoint` (a route such as "/v1/completions",
  /// or "other") was answered with `status`.
  void http_request(const std::string& endpoint, int status);

  /// A completion's first token reached its HTTP client `seconds` after the
  /// request arrived.
  void time_to_first_token(double seconds);

  /// `seconds` passed between two tokens of one choice on their way to an
  /// HTTP client.
  void inter_token_latency(double seconds);

  /// One step of the prefetch predictor `predictor` ("ngram",
  /// "cross_layer" or "combined") at `layer`: experts it named, and how many
  /// of them the router then chose.
  void prefetch_predicted(uint32_t layer, const char* predictor,
                          uint64_t predicted, uint64_t hits);

  /// One step at `layer`: the distinct experts the router chose, and those
  /// the predictor told the expert cache to stage.
  void prefetch_routed(uint32_t layer, uint64_t routed, uint64_t staged);

  /// The prefetch predictor scored one more step.
  void prefetch_step();

  /// What a GPU expert cache did in one step, per layer (index = layer).
  void expert_cache_step(const std::vector<expert_cache_layer>& layers);

  /// What a GPU expert cache did for one layer (a worker's, batch by batch).
  void expert_cache_layer_counts(int64_t layer, const expert_cache_layer& c);

  /// Token rows this node's experts computed since start (a worker's load).
  uint64_t rows_computed() const;

  /// Every metric in Prometheus' text format, as GET /metrics serves it.
  std::string text() const;
  /// The request latency histogram now: (upper bound in seconds, requests
  /// at or below it since start) per bucket, ascending, the last bound
  /// infinite; what the autoscaler estimates quantiles from.
  std::vector<std::pair<double, uint64_t>> request_latency_buckets() const;

  /// The autoscaler took `action` ("scale_up" or "scale_down").
  void autoscaler_action(const std::string& action);

  /// Expert replicas that the autoscaler added and that serve now.
  void autoscaler_replicas(size_t n);

  /// One POST of an autoscaler event to the webhook ended with `outcome`
  /// ("ok" or "error").
  void webhook_post(const std::string& outcome);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The HTTP endpoint that serves GET /metrics in Prometheus' text format.
///
/// A small server of our own on one thread rather than prometheus-cpp's
/// civetweb exposer: civetweb's start-up fails in a process that also loads
/// cuBLAS (CUDA 13's libcublasLt), which every CUDA build of volt-node does.
/// Each connection gets one response and is closed; a client that sends
/// nothing for a second is dropped, so a stuck scraper cannot block it.
class metrics_endpoint {
public:
  /// Listens on host:port; an error (naming the port) when it cannot bind.
  static caf::expected<std::unique_ptr<metrics_endpoint>>
  start(const std::string& host, uint16_t port,
        std::shared_ptr<prometheus::Registry> registry);

  ~metrics_endpoint();

  /// The bound port (useful with port 0).
  uint16_t port() const {
    return port_;
  }

private:
  metrics_endpoint() = default;

  void serve();
  void answer(int fd, const std::string& peer);

  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::shared_ptr<prometheus::Registry> registry_;
  std::thread thread_;
};

} // namespace volt
