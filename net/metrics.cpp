#include "net/metrics.hpp"

#include <atomic>
#include <mutex>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "base/error.hpp"
#include "base/log.hpp"
#include "config/endpoint.hpp"
#include "net/tcp_listen.hpp"

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

/// Time between two streamed tokens: 1 ms to 10 s, finer where decode steps
/// fall.
const Histogram::BucketBoundaries token_gap_buckets
  = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08,
     0.1,   0.15,   0.25,  0.5,  1.0,  2.5,  5.0,  10.0};

/// Batch size buckets: powers of two up to 256 sequences.
const Histogram::BucketBoundaries batch_buckets = {1,  2,  4,   8,  16,
                                                   32, 64, 128, 256};

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
  /// Tokens generated after their answer lost an expert (degraded routing:
  /// [router] on_missing_expert = "renormalize").
  Family<Counter>& degraded
    = BuildCounter()
        .Name("voltinfer_degraded_tokens_total")
        .Help("Tokens generated while some expert their answer was routed to "
              "had no live host (weights renormalised over the others)")
        .Labels(node)
        .Register(*registry);
  /// Connections to [network] port that never became a BASP peer.
  Family<Counter>& rejected
    = BuildCounter()
        .Name("voltinfer_rejected_connections_total")
        .Help("Connections to the node port closed before a BASP handshake, "
              "by reason")
        .Labels(node)
        .Register(*registry);

  /// KV pages holding K/V of running sequences.
  Family<Gauge>& kv_used = BuildGauge()
                             .Name("voltinfer_kv_pages_used")
                             .Help("KV cache pages referenced by sequences")
                             .Labels(node)
                             .Register(*registry);
  /// KV pages in the pool. Issue 5 names it voltinfer_kv_pages_total, but
  /// promtool rejects "_total" on anything but a counter.
  Family<Gauge>& kv_total = BuildGauge()
                              .Name("voltinfer_kv_pages_capacity")
                              .Help("KV cache pages in the pool")
                              .Labels(node)
                              .Register(*registry);
  /// Pages copied because a sequence wrote into a shared page.
  Family<Counter>& kv_cow = BuildCounter()
                              .Name("voltinfer_kv_copy_on_write_total")
                              .Help("KV pages copied on write")
                              .Labels(node)
                              .Register(*registry);
  /// Prefix-cache lookups, hits, hit tokens and evictions.
  Family<Counter>& prefix_lookups
    = BuildCounter()
        .Name("voltinfer_prefix_lookups_total")
        .Help("Prompts looked up in the prefix cache")
        .Labels(node)
        .Register(*registry);
  Family<Counter>& prefix_hits = BuildCounter()
                                   .Name("voltinfer_prefix_hits_total")
                                   .Help("Prompts that reused cached KV pages")
                                   .Labels(node)
                                   .Register(*registry);
  Family<Counter>& prefix_tokens
    = BuildCounter()
        .Name("voltinfer_prefix_hit_tokens_total")
        .Help("Prompt tokens whose KV came from the prefix cache")
        .Labels(node)
        .Register(*registry);
  Family<Counter>& kv_evictions = BuildCounter()
                                    .Name("voltinfer_kv_evictions_total")
                                    .Help("Cached KV pages evicted (LRU)")
                                    .Labels(node)
                                    .Register(*registry);
  /// Sequences whose pages were released for a running sequence's growth.
  Family<Counter>& preemptions
    = BuildCounter()
        .Name("voltinfer_kv_preemptions_total")
        .Help("Sequences preempted for KV pages (resumed by recomputation)")
        .Labels(node)
        .Register(*registry);
  /// Sequences per engine step.
  Family<Histogram>& batch = BuildHistogram()
                               .Name("voltinfer_batch_size")
                               .Help("Sequences computed together per step")
                               .Labels(node)
                               .Register(*registry);
  /// Wall time of engine steps, by phase: "decode" when every sequence of
  /// the step computed one row, else "prefill".
  Family<Counter>& step_seconds
    = BuildCounter()
        .Name("voltinfer_step_seconds_total")
        .Help("Time of engine steps, by phase (prefill or decode)")
        .Labels(node)
        .Register(*registry);
  /// Token rows computed by engine steps, by phase.
  Family<Counter>& step_rows = BuildCounter()
                                 .Name("voltinfer_step_rows_total")
                                 .Help("Token rows of engine steps, by phase")
                                 .Labels(node)
                                 .Register(*registry);
  /// The part of step_seconds spent waiting for expert hosts on other nodes
  /// (the network both ways and their compute): divided by step_seconds, the
  /// share of a step that distribution costs the node that runs attention.
  Family<Counter>& expert_wait
    = BuildCounter()
        .Name("voltinfer_expert_wait_seconds_total")
        .Help("Time engine steps waited for expert hosts on other nodes to "
              "answer their rows, by phase")
        .Labels(node)
        .Register(*registry);
  /// Requests to the OpenAI-compatible API by route and HTTP status.
  Family<Counter>& http_requests
    = BuildCounter()
        .Name("voltinfer_http_requests_total")
        .Help("HTTP API requests by endpoint and status")
        .Labels(node)
        .Register(*registry);
  /// Arrival of an HTTP completion request to its first token.
  Family<Histogram>& first_token
    = BuildHistogram()
        .Name("voltinfer_time_to_first_token_seconds")
        .Help("Time from an HTTP completion request's arrival to its first "
              "token")
        .Labels(node)
        .Register(*registry);
  /// Time between consecutive tokens of one choice, as the HTTP API sees
  /// them.
  Family<Histogram>& token_gap
    = BuildHistogram()
        .Name("voltinfer_inter_token_latency_seconds")
        .Help("Time between consecutive tokens of one choice of an HTTP "
              "completion")
        .Labels(node)
        .Register(*registry);
  /// Steps the prefetch predictor scored.
  Family<Counter>& prefetch_steps
    = BuildCounter()
        .Name("voltinfer_prefetch_steps_total")
        .Help("Engine steps whose routing the prefetch predictor scored")
        .Labels(node)
        .Register(*registry);
  /// Experts each predictor named per layer: with prefetch_hits and
  /// prefetch_routed, precision = hits / predicted, recall = hits / routed.
  Family<Counter>& prefetch_predicted
    = BuildCounter()
        .Name("voltinfer_prefetch_predicted_experts_total")
        .Help("Experts a prefetch predictor named for a step, by layer and "
              "predictor")
        .Labels(node)
        .Register(*registry);
  Family<Counter>& prefetch_hits
    = BuildCounter()
        .Name("voltinfer_prefetch_hit_experts_total")
        .Help("Named experts the router then chose, by layer and predictor")
        .Labels(node)
        .Register(*registry);
  Family<Counter>& prefetch_routed
    = BuildCounter()
        .Name("voltinfer_prefetch_routed_experts_total")
        .Help("Distinct experts the router chose per step, by layer")
        .Labels(node)
        .Register(*registry);
  /// What the expert cache was told to stage (the combined prediction).
  Family<Counter>& prefetch_staged
    = BuildCounter()
        .Name("voltinfer_prefetch_staged_experts_total")
        .Help("Experts the prefetch predictor told the expert cache to stage, "
              "by layer")
        .Labels(node)
        .Register(*registry);
  /// The GPU expert cache, per layer: experts found resident, experts
  /// loaded on a miss, bytes copied to the device and time waited for them.
  Family<Counter>& expert_cache_hits
    = BuildCounter()
        .Name("voltinfer_expert_cache_hits_total")
        .Help("Experts a step needed that were on the device (resident or "
              "staged by the prefetch predictor), by layer")
        .Labels(node)
        .Register(*registry);
  Family<Counter>& expert_cache_misses
    = BuildCounter()
        .Name("voltinfer_expert_cache_misses_total")
        .Help("Experts a step needed that were not resident (loaded, or "
              "computed on the host), by layer")
        .Labels(node)
        .Register(*registry);
  Family<Counter>& expert_cache_host
    = BuildCounter()
        .Name("voltinfer_expert_cache_host_computed_total")
        .Help("Missed experts the host CPU computed from the pinned copy "
              "([worker] expert_misses), by layer")
        .Labels(node)
        .Register(*registry);
  Family<Counter>& expert_cache_split
    = BuildCounter()
        .Name("voltinfer_expert_cache_host_split_total")
        .Help("Of the missed experts the host computed, those split with the "
              "device: the device computed the first part of their FFN, by "
              "layer")
        .Labels(node)
        .Register(*registry);
  Family<Counter>& expert_cache_bytes
    = BuildCounter()
        .Name("voltinfer_expert_cache_bytes_total")
        .Help("Expert bytes copied to the device, by layer and why (staged: "
              "predicted ahead; loaded: on a miss)")
        .Labels(node)
        .Register(*registry);
  Family<Counter>& expert_cache_stall
    = BuildCounter()
        .Name("voltinfer_expert_cache_stall_seconds_total")
        .Help("Time a layer's experts waited after its routing, for their "
              "copies and for the host's experts, by layer")
        .Labels(node)
        .Register(*registry);
  /// Scale-ups and scale-downs of the autoscaler.
  Family<Counter>& autoscaler_actions
    = BuildCounter()
        .Name("voltinfer_autoscaler_actions_total")
        .Help("Autoscaler actions taken, by action (scale_up, scale_down)")
        .Labels(node)
        .Register(*registry);
  /// Expert replicas the autoscaler spawned on spare nodes, while they serve.
  Family<Gauge>& autoscaler_replicas
    = BuildGauge()
        .Name("voltinfer_autoscaler_replicas")
        .Help("Expert replicas added by the autoscaler that serve now")
        .Labels(node)
        .Register(*registry);
  /// POSTs of autoscaler events to the webhook, retries included.
  Family<Counter>& webhook_posts
    = BuildCounter()
        .Name("voltinfer_autoscaler_webhook_posts_total")
        .Help("POSTs of autoscaler events to the webhook, by outcome (ok, "
              "error)")
        .Labels(node)
        .Register(*registry);
  /// Last cumulative values reported by the scheduler, so that counters
  /// grow by the difference.
  std::mutex kv_mtx;
  uint64_t last_copies = 0, last_lookups = 0, last_hits = 0,
           last_hit_tokens = 0, last_evictions = 0;

  /// Sum of expert_rows over all series, read without a scrape.
  std::atomic<uint64_t> rows_computed{0};

  explicit impl(const std::string& node_id) : node{{"node", node_id}} {}
};

node_metrics::node_metrics(const std::string& node_id)
  : impl_(std::make_unique<impl>(node_id)) {
  // Series without labels exist from the start, so scrapes see zeros.
  impl_->queue.Add({});
  impl_->workers.Add({});
  impl_->tokens.Add({});
  impl_->failovers.Add({});
  impl_->degraded.Add({});
  impl_->request_latency.Add({}, latency_buckets);
  impl_->batch.Add({}, batch_buckets);
  impl_->first_token.Add({}, latency_buckets);
  impl_->token_gap.Add({}, token_gap_buckets);
  for (auto* family :
       {&impl_->kv_cow, &impl_->prefix_lookups, &impl_->prefix_hits,
        &impl_->prefix_tokens, &impl_->kv_evictions, &impl_->preemptions})
    family->Add({});
  impl_->kv_used.Add({});
  impl_->kv_total.Add({});
  for (auto action : {"scale_up", "scale_down"})
    impl_->autoscaler_actions.Add({{"action", action}});
  impl_->autoscaler_replicas.Add({});
  for (auto phase : {"prefill", "decode"})
    for (auto* family :
         {&impl_->step_seconds, &impl_->step_rows, &impl_->expert_wait})
      family->Add({{"phase", phase}});
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

void node_metrics::request_refused() {
  impl_->requests.Add({{"outcome", "error"}}).Increment();
}

void node_metrics::queue_depth(size_t n) {
  impl_->queue.Add({}).Set(static_cast<double>(n));
}

void node_metrics::expert_batch(uint32_t layer, uint32_t expert, size_t rows) {
  prometheus::Labels labels{{"layer", std::to_string(layer)},
                            {"expert_id", std::to_string(expert)}};
  impl_->expert_requests.Add(labels).Increment();
  impl_->expert_rows.Add(labels).Increment(static_cast<double>(rows));
  impl_->rows_computed += rows;
}

void node_metrics::kv_pool(int64_t used, int64_t total, uint64_t copies,
                           uint64_t lookups, uint64_t hits, uint64_t hit_tokens,
                           uint64_t evictions) {
  auto& m = *impl_;
  m.kv_used.Add({}).Set(static_cast<double>(used));
  m.kv_total.Add({}).Set(static_cast<double>(total));
  std::lock_guard<std::mutex> guard{m.kv_mtx};
  auto grow = [](Family<Counter>& family, uint64_t now, uint64_t& last) {
    if (now > last)
      family.Add({}).Increment(static_cast<double>(now - last));
    last = now;
  };
  grow(m.kv_cow, copies, m.last_copies);
  grow(m.prefix_lookups, lookups, m.last_lookups);
  grow(m.prefix_hits, hits, m.last_hits);
  grow(m.prefix_tokens, hit_tokens, m.last_hit_tokens);
  grow(m.kv_evictions, evictions, m.last_evictions);
}

void node_metrics::batch_size(size_t n) {
  impl_->batch.Add({}, batch_buckets).Observe(static_cast<double>(n));
}

void node_metrics::step_done(bool decode, size_t rows, double seconds,
                             double wait_seconds) {
  prometheus::Labels phase{{"phase", decode ? "decode" : "prefill"}};
  impl_->step_seconds.Add(phase).Increment(seconds);
  impl_->step_rows.Add(phase).Increment(static_cast<double>(rows));
  impl_->expert_wait.Add(phase).Increment(wait_seconds);
}

void node_metrics::http_request(const std::string& endpoint, int status) {
  impl_->http_requests
    .Add({{"endpoint", endpoint}, {"status", std::to_string(status)}})
    .Increment();
}

void node_metrics::time_to_first_token(double seconds) {
  impl_->first_token.Add({}, latency_buckets).Observe(seconds);
}

void node_metrics::inter_token_latency(double seconds) {
  impl_->token_gap.Add({}, token_gap_buckets).Observe(seconds);
}

void node_metrics::prefetch_predicted(uint32_t layer, const char* predictor,
                                      uint64_t predicted, uint64_t hits) {
  prometheus::Labels labels{{"layer", std::to_string(layer)},
                            {"predictor", predictor}};
  impl_->prefetch_predicted.Add(labels).Increment(
    static_cast<double>(predicted));
  impl_->prefetch_hits.Add(labels).Increment(static_cast<double>(hits));
}

void node_metrics::prefetch_routed(uint32_t layer, uint64_t routed,
                                   uint64_t staged) {
  prometheus::Labels labels{{"layer", std::to_string(layer)}};
  impl_->prefetch_routed.Add(labels).Increment(static_cast<double>(routed));
  impl_->prefetch_staged.Add(labels).Increment(static_cast<double>(staged));
}

void node_metrics::prefetch_step() {
  impl_->prefetch_steps.Add({}).Increment();
}

void node_metrics::expert_cache_step(
  const std::vector<expert_cache_layer>& layers) {
  for (size_t l = 0; l < layers.size(); ++l)
    expert_cache_layer_counts(static_cast<int64_t>(l), layers[l]);
}

void node_metrics::expert_cache_layer_counts(int64_t l,
                                             const expert_cache_layer& c) {
  auto layer = std::to_string(l);
  impl_->expert_cache_hits.Add({{"layer", layer}})
    .Increment(static_cast<double>(c.hits));
  impl_->expert_cache_misses.Add({{"layer", layer}})
    .Increment(static_cast<double>(c.misses));
  impl_->expert_cache_host.Add({{"layer", layer}})
    .Increment(static_cast<double>(c.host_computed));
  impl_->expert_cache_split.Add({{"layer", layer}})
    .Increment(static_cast<double>(c.host_split));
  impl_->expert_cache_bytes.Add({{"layer", layer}, {"kind", "staged"}})
    .Increment(static_cast<double>(c.staged_bytes));
  impl_->expert_cache_bytes.Add({{"layer", layer}, {"kind", "loaded"}})
    .Increment(static_cast<double>(c.loaded_bytes));
  impl_->expert_cache_stall.Add({{"layer", layer}}).Increment(c.stall_seconds);
}

uint64_t node_metrics::rows_computed() const {
  return impl_->rows_computed.load();
}

std::string node_metrics::text() const {
  return prometheus::TextSerializer{}.Serialize(impl_->registry->Collect());
}

std::vector<std::pair<double, uint64_t>>
node_metrics::request_latency_buckets() const {
  auto metric = impl_->request_latency.Add({}, latency_buckets).Collect();
  std::vector<std::pair<double, uint64_t>> out;
  for (const auto& bucket : metric.histogram.bucket)
    out.emplace_back(bucket.upper_bound, bucket.cumulative_count);
  return out;
}

void node_metrics::autoscaler_action(const std::string& action) {
  impl_->autoscaler_actions.Add({{"action", action}}).Increment();
}

void node_metrics::autoscaler_replicas(size_t n) {
  impl_->autoscaler_replicas.Add({}).Set(static_cast<double>(n));
}

void node_metrics::webhook_post(const std::string& outcome) {
  impl_->webhook_posts.Add({{"outcome", outcome}}).Increment();
}

void node_metrics::bytes_sent(const std::string& peer, size_t n) {
  impl_->sent.Add({{"peer", peer}}).Increment(static_cast<double>(n));
}

void node_metrics::bytes_received(const std::string& peer, size_t n) {
  impl_->received.Add({{"peer", peer}}).Increment(static_cast<double>(n));
}

void node_metrics::connections_rejected(const std::string& reason, uint64_t n) {
  impl_->rejected.Add({{"reason", reason}}).Increment(static_cast<double>(n));
}

void node_metrics::live_workers(size_t n) {
  impl_->workers.Add({}).Set(static_cast<double>(n));
}

void node_metrics::failover() {
  impl_->failovers.Add({}).Increment();
}

void node_metrics::degraded_token() {
  impl_->degraded.Add({}).Increment();
}

void node_metrics::preemption() {
  impl_->preemptions.Add({}).Increment();
}

caf::expected<std::unique_ptr<metrics_endpoint>>
metrics_endpoint::start(const std::string& host, uint16_t port,
                        std::shared_ptr<prometheus::Registry> registry) {
  auto fail = [&](const std::string& why) {
    return make_volt_error(volt_errc::invalid_config,
                           "[metrics] port: cannot serve /metrics on "
                             + render_endpoint(host, port) + ": " + why);
  };
  auto bound = listen_tcp(host, port);
  if (!bound)
    return fail(describe(bound.error()));
  std::unique_ptr<metrics_endpoint> result{new metrics_endpoint};
  int fd = bound->fd;
  result->port_ = bound->port;
  result->listen_fd_ = fd;
  if (pipe2(result->wake_pipe_, O_CLOEXEC) != 0) {
    close(fd);
    return fail(std::strerror(errno));
  }
  result->registry_ = std::move(registry);
  result->thread_ = std::thread{[ep = result.get()] { ep->serve(); }};
  return result;
}

metrics_endpoint::~metrics_endpoint() {
  if (thread_.joinable()) {
    char byte = 0;
    (void)!write(wake_pipe_[1], &byte, 1);
    thread_.join();
  }
  for (int fd : {listen_fd_, wake_pipe_[0], wake_pipe_[1]})
    if (fd >= 0)
      close(fd);
}

void metrics_endpoint::serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    if (fds[1].revents != 0)
      return; // the destructor wants us to stop
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    int client = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len,
                         SOCK_CLOEXEC);
    if (client < 0)
      continue;
    answer(client, numeric_address(peer, len));
    close(client);
  }
}

void metrics_endpoint::answer(int fd, const std::string& peer) {
  // Read the request head (up to 8 KiB, at most one second of silence).
  std::string head;
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < 8192) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0)
      return;
    auto n = read(fd, buf, sizeof(buf));
    if (n <= 0)
      return;
    head.append(buf, static_cast<size_t>(n));
  }
  auto line_end = head.find("\r\n");
  auto line = head.substr(0, line_end);
  std::string status = "200 OK";
  std::string body;
  std::string type = "text/plain; version=0.0.4; charset=utf-8";
  if (line.rfind("GET ", 0) != 0 && line.rfind("HEAD ", 0) != 0) {
    status = line.find(" HTTP/") == std::string::npos ? "400 Bad Request"
                                                      : "405 Method Not "
                                                        "Allowed";
    body = status + "\n";
    type = "text/plain";
  } else {
    auto path_begin = line.find(' ') + 1;
    auto path = line.substr(path_begin,
                            line.find(' ', path_begin) - path_begin);
    if (path == "/metrics" || path.rfind("/metrics?", 0) == 0) {
      std::ostringstream out;
      prometheus::TextSerializer{}.Serialize(out, registry_->Collect());
      body = out.str();
    } else {
      status = "404 Not Found";
      body = "Volt serves its metrics at /metrics\n";
      type = "text/plain";
    }
  }
  if (status.rfind("200", 0) != 0) {
    // The request line may be any bytes: log a printable excerpt.
    auto excerpt = line.substr(0, 60);
    for (auto& c : excerpt)
      if (c < 0x20 || c > 0x7e)
        c = '?';
    VOLT_WARN("metrics", peer << ": " << status << " for '" << excerpt << "'");
  }
  auto response = "HTTP/1.1 " + status + "\r\nContent-Type: " + type
                  + "\r\nContent-Length: " + std::to_string(body.size())
                  + "\r\nConnection: close\r\n\r\n"
                  + (line.rfind("HEAD ", 0) == 0 ? std::string{} : body);
  size_t sent = 0;
  while (sent < response.size()) {
    auto n = send(fd, response.data() + sent, response.size() - sent,
                  MSG_NOSIGNAL);
    if (n <= 0)
      return;
    sent += static_cast<size_t>(n);
  }
}

} // namespace volt
