#include "net/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "base/error.hpp"

namespace volt {

namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

/// Request latency buckets: 1 ms to 2 minutes, roughly x2.5 apart.
const Histogram::BucketBoundaries latency_buckets
  = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,  0.25,
     0.5,   1.0,    2.5,   5.0,  10.0,  30.0, 60.0, 120.0};

} // namespace

// -- the metric table ---------------------------------------------------------

// Members initialise in declaration order: `node` (set by the constructor)
// comes before the families that copy it as their constant label.
struct node_metrics::impl {
  std::shared_ptr<prometheus::Registry> registry
    = std::make_shared<prometheus::Registry>();
  prometheus::Labels node;

  /// End-to-end latency of generation requests (arrival to answer).
  Family<Histogram>& request_latency
    = BuildHistogram()
        .Name("voltinfer_request_latency_seconds")
        .Help("Latency of generation requests, from arrival to answer")
        .Labels(node)
        .Register(*registry);
  /// Finished generation requests by outcome ("ok" or "error").
  Family<Counter>& requests = BuildCounter()
                                .Name("voltinfer_requests_total")
                                .Help("Generation requests by outcome")
                                .Labels(node)
                                .Register(*registry);
  /// Requests waiting for the engine (the running one excluded).
  Family<Gauge>& queue = BuildGauge()
                           .Name("voltinfer_queue_depth")
                           .Help("Generation requests waiting in the queue")
                           .Labels(node)
                           .Register(*registry);
  /// Batches each expert computed, per layer.
  Family<Counter>& expert_requests
    = BuildCounter()
        .Name("voltinfer_expert_requests_total")
        .Help("Expert FFN batches computed, by layer and expert")
        .Labels(node)
        .Register(*registry);
  /// Token rows each expert computed, per layer (its utilisation).
  Family<Counter>& expert_rows
    = BuildCounter()
        .Name("voltinfer_expert_rows_total")
        .Help("Token rows computed, by layer and expert")
        .Labels(node)
        .Register(*registry);
  /// Tokens generated for clients.
  Family<Counter>& tokens = BuildCounter()
                              .Name("voltinfer_tokens_generated_total")
                              .Help("Tokens generated for clients")
                              .Labels(node)
                              .Register(*registry);
  /// Tensor payload bytes sent to each peer node.
  Family<Counter>& sent = BuildCounter()
                            .Name("voltinfer_peer_bytes_sent_total")
                            .Help("Tensor payload bytes sent, by peer")
                            .Labels(node)
                            .Register(*registry);
  /// Tensor payload bytes received from each peer node.
  Family<Counter>& received = BuildCounter()
                                .Name("voltinfer_peer_bytes_received_total")
                                .Help("Tensor payload bytes received, by peer")
                                .Labels(node)
                                .Register(*registry);
  /// Remote expert hosts in use.
  Family<Gauge>& workers = BuildGauge()
                             .Name("voltinfer_live_workers")
                             .Help("Remote expert hosts the engine uses")
                             .Labels(node)
                             .Register(*registry);
  /// Expert batches re-sent because their host failed.
  Family<Counter>& failovers
    = BuildCounter()
        .Name("voltinfer_failovers_total")
        .Help("Expert batches re-sent to a replica after their host failed")
        .Labels(node)
        .Register(*registry);

  explicit impl(const std::string& node_id) : node{{"node", node_id}} {}
};

node_metrics::node_metrics(const std::string& node_id)
  : impl_(std::make_unique<impl>(node_id)) {
  // Series without labels exist from the start, so scrapes see zeros.
  impl_->queue.Add({});
  impl_->workers.Add({});
  impl_->tokens.Add({});
  impl_->failovers.Add({});
  impl_->request_latency.Add({}, latency_buckets);
}

node_metrics::~node_metrics() = default;

std::shared_ptr<prometheus::Registry> node_metrics::registry() const {
  return impl_->registry;
}

void node_metrics::request_done(double seconds, bool ok, size_t new_tokens) {
  impl_->request_latency.Add({}, latency_buckets).Observe(seconds);
  impl_->requests.Add({{"outcome", ok ? "ok" : "error"}}).Increment();
  impl_->tokens.Add({}).Increment(static_cast<double>(new_tokens));
}

void node_metrics::queue_depth(size_t n) {
  impl_->queue.Add({}).Set(static_cast<double>(n));
}

void node_metrics::expert_batch(uint32_t layer, uint32_t expert, size_t rows) {
  prometheus::Labels labels{{"layer", std::to_string(layer)},
                            {"expert_id", std::to_string(expert)}};
  impl_->expert_requests.Add(labels).Increment();
  impl_->expert_rows.Add(labels).Increment(static_cast<double>(rows));
}

void node_metrics::bytes_sent(const std::string& peer, size_t n) {
  impl_->sent.Add({{"peer", peer}}).Increment(static_cast<double>(n));
}

void node_metrics::bytes_received(const std::string& peer, size_t n) {
  impl_->received.Add({{"peer", peer}}).Increment(static_cast<double>(n));
}

void node_metrics::live_workers(size_t n) {
  impl_->workers.Add({}).Set(static_cast<double>(n));
}

void node_metrics::failover() {
  impl_->failovers.Add({}).Increment();
}

caf::expected<std::unique_ptr<metrics_endpoint>>
metrics_endpoint::start(const std::string& host, uint16_t port,
                        std::shared_ptr<prometheus::Registry> registry) {
  std::unique_ptr<metrics_endpoint> result{new metrics_endpoint};
  auto address = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  try {
    result->exposer_ = std::make_unique<prometheus::Exposer>(
      address + ":" + std::to_string(port));
  } catch (const std::exception& ex) {
    return make_volt_error(volt_errc::invalid_config,
                           "[metrics] port: cannot serve /metrics on " + host
                             + ":" + std::to_string(port) + ": " + ex.what());
  }
  result->exposer_->RegisterCollectable(registry);
  return result;
}

metrics_endpoint::~metrics_endpoint() = default;

} // namespace volt
