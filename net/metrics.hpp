#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "caf/expected.hpp"

namespace prometheus {
class Registry;
class Exposer;
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

  /// Requests waiting in the engine's queue (not counting the running one).
  void queue_depth(size_t n);

  /// An expert of `layer` computed `rows` token rows in one batch.
  void expert_batch(uint32_t layer, uint32_t expert, size_t rows);

  /// Payload bytes of tensors sent to / received from `peer` ("host:port").
  void bytes_sent(const std::string& peer, size_t n);
  void bytes_received(const std::string& peer, size_t n);

  /// Workers (remote expert hosts) the engine currently uses.
  void live_workers(size_t n);

  /// Expert work re-sent to another host after its host failed.
  void failover();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The HTTP endpoint that serves /metrics in Prometheus' text format.
class metrics_endpoint {
public:
  /// Listens on host:port; an error (naming the port) when it cannot bind.
  static caf::expected<std::unique_ptr<metrics_endpoint>>
  start(const std::string& host, uint16_t port,
        std::shared_ptr<prometheus::Registry> registry);

  ~metrics_endpoint();

private:
  metrics_endpoint() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

} // namespace volt
