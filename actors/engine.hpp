#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "actors/type_ids.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "caf/typed_response_promise.hpp"
#include "model/forward.hpp"
#include "model/kv_cache.hpp"
#include "model/mixtral.hpp"

namespace volt {

/// An expert actor and the experts it hosts.
struct expert_host {
  expert_actor handle;
  std::vector<uint32_t> experts;
};

/// Tunables of the engine.
struct engine_options {
  /// Tokens per KV page.
  int64_t page_size = 16;
  /// Pages in the KV pool; 0 means enough for one sequence of the model's full
  /// context.
  int64_t num_pages = 0;
  /// How long one gating or expert request may take before the generation
  /// fails.
  std::chrono::milliseconds step_timeout = std::chrono::seconds{120};
};

/// The generation in flight: its request, pages, tokens and the step being
/// computed.
struct active_generation {
  generate_request request;
  caf::typed_response_promise<generate_result> promise;
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

/// State of the engine actor.
struct engine_state {
  std::shared_ptr<const dense_weights> weights;
  gating_actor gating;
  std::vector<expert_host> hosts;
  std::vector<int32_t> host_of_expert; // [n_experts] -> index into hosts
  std::optional<kv_cache> cache;
  engine_options options;
  std::deque<
    std::pair<generate_request, caf::typed_response_promise<generate_result>>>
    queue;
  std::unique_ptr<active_generation> active;
  uint64_t completed = 0;
  uint64_t failed = 0;

  static inline const char* name = "volt.engine";
};

using engine_pointer = engine_actor::stateful_pointer<engine_state>;

/// Owns generation requests and runs the layer loop: attention here, routing on
/// the gating actor, expert FFNs on the expert actors (one message per hosting
/// actor per layer), combine here. Requests are served one at a time in arrival
/// order; later requests wait in the queue.
engine_actor::behavior_type
engine(engine_pointer self, std::shared_ptr<const dense_weights> weights,
       gating_actor gating, std::vector<expert_host> hosts,
       engine_options options);

} // namespace volt
