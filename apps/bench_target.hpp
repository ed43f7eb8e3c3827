#pragma once

// Where a benchmark's requests go (an engine in this process or a node's
// over CAF) and what the node's Prometheus counters say about the network
// while they run.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "actors/type_ids.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"
#include "config/endpoint.hpp"
#include "model/json_fwd.hpp"

namespace volt {

/// The engine the requests go to: in this process or on a node.
struct bench_target {
  engine_actor engine;
  std::string name; // "this process" or host:port
  /// How long a run waits for the engine to be ready.
  std::chrono::seconds wait{30};
  /// The node's [metrics] endpoint, when the benchmark reads its counters.
  std::optional<endpoint> metrics;

  /// Sends every request at once and returns the answers in order.
  caf::expected<std::vector<generate_result>>
  run(caf::actor_system& sys, const std::vector<generate_request>& reqs) const;
};

/// What the node's counters say about the network during one measurement.
struct network_cost {
  /// Tensor payload bytes sent and received per token row and layer.
  double wire_bytes_per_token_layer = 0;
  /// Of the time of the measurement's steps of one phase, the share spent
  /// waiting for expert hosts on other nodes.
  double expert_wait_share = 0;
};

/// The node's counters before a measurement; `cost` reads them again after.
class counter_reading {
public:
  /// Reads the counters when the target has a metrics endpoint (else `cost`
  /// has nothing to say).
  static caf::expected<counter_reading> take(const bench_target& t);

  /// The cost since `take`: bytes per row over every step in between, the
  /// wait share of the steps of `phase` ("prefill" or "decode").
  caf::expected<std::optional<network_cost>> cost(const char* phase,
                                                  int64_t layers) const;

private:
  std::optional<endpoint> at_;
  std::string before_;
};

/// Adds the cost's fields to a JSON row (none when there is no cost).
void add_network(json::value& row, const std::optional<network_cost>& cost);

/// The cost as a suffix of a row for a person ("" when there is no cost).
std::string network_text(const std::optional<network_cost>& cost);

} // namespace volt
