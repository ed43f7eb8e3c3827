#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/expert_pool.hpp"
#include "actors/type_ids.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "caf/typed_response_promise.hpp"
#include "model/forward.hpp"
#include "model/kv_cache.hpp"
#include "model/mixtral.hpp"
#include "net/metrics.hpp"

namespace volt {

/// Tunables of the engine.
struct engine_options {
  /// Tokens per KV page.
  int64_t page_size = 16;
  /// Pages in the KV pool; 0 means enough for one sequence of the model's full
  /// context.
  int64_t num_pages = 0;
  /// How long one gating or expert request may take before it counts as
  /// failed (and is retried on a replica).
  std::chrono::milliseconds step_timeout = std::chrono::seconds{120};
  /// How long a request waits for every expert to have a live host.
  std::chrono::milliseconds ready_timeout = std::chrono::seconds{30};
  /// Where the engine reports; may be null.
  std::shared_ptr<node_metrics> metrics;
};

/// A request waiting for its turn.
struct queued_generation {
  generate_request request;
  caf::typed_response_promise<generate_result> promise;
  std::chrono::steady_clock::time_point arrived;
};

/// The generation in flight: its request, pages, tokens and the step being
/// computed.
struct active_generation {
  queued_generation origin;
  sequence_pages pages;
  std::vector<int32_t> tokens; // prompt followed by generated tokens
  generate_result result;
  std::vector<int32_t> routing; // [n_layers, n_prompt, k] when asked
  step_batch batch;
  std::vector<float> hidden; // [batch rows, hidden]
  bool prefill = true;
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point prefill_done;
};

/// Rows of one request to one host, in flight.
struct dispatch_part {
  uint64_t host = 0;
  std::vector<size_t> plan_entries; // indices into the layer's dispatch_plan
  int64_t rows = 0;
  int attempt = 0;
  /// Hosts that already failed these rows; retries go elsewhere if possible.
  std::vector<uint64_t> failed_hosts;
};

/// One layer's expert work in flight: the MoE input, who computes what, and the
/// outputs gathered so far. Parts whose host fails are re-sent to replicas.
struct layer_dispatch {
  int64_t layer = 0;
  std::vector<float> x; // [n, hidden] MoE input
  dispatch_plan plan; // rows grouped by expert
  std::vector<int64_t> first_row; // [plan entries] first grouped row
  std::vector<float> topk_weights; // [n, k]
  std::vector<float> expert_out; // [n * k, hidden]
  std::map<uint64_t, dispatch_part> parts;
  uint64_t next_part = 1;
};

/// State of the engine actor.
struct engine_state {
  std::shared_ptr<const dense_weights> weights;
  gating_actor gating;
  expert_pool pool;
  std::optional<kv_cache> cache;
  engine_options options;
  std::deque<queued_generation> queue;
  std::unique_ptr<active_generation> active;
  std::unique_ptr<layer_dispatch> dispatch;
  std::vector<caf::typed_response_promise<bool>> ready_waiters;
  std::vector<caf::typed_response_promise<bool>> drain_waiters;
  bool tick_scheduled = false;
  uint64_t completed = 0;
  uint64_t failed = 0;

  static inline const char* name = "volt.engine";
};

using engine_pointer = engine_actor::stateful_pointer<engine_state>;

/// Owns generation requests and runs the layer loop: attention here, routing on
/// the gating actor, expert FFNs on the expert hosts (one message per host per
/// layer; replicas picked by load), combine here. Hosts join with `host_atom`
/// and are monitored: the work of a host that dies is re-sent to a replica.
/// Requests run one at a time in arrival order; a request waits (up to
/// ready_timeout) while some expert has no live host.
engine_actor::behavior_type
engine(engine_pointer self, std::shared_ptr<const dense_weights> weights,
       gating_actor gating, std::vector<expert_host> hosts,
       engine_options options);

} // namespace volt
