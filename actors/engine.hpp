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
#include "actors/kv_page_manager.hpp"
#include "actors/type_ids.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "caf/typed_response_promise.hpp"
#include "model/forward.hpp"
#include "model/kv_cache.hpp"
#include "model/mixtral.hpp"
#include "model/sampler.hpp"
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
  /// failed (and is retried on a replica). Checked by the engine's timer,
  /// which runs every quarter of this (at most every 250 ms) while a step is
  /// in flight, not by a timeout per request: each of those woke CAF's clock
  /// thread twice, which made a one-request decode step twice as slow.
  std::chrono::milliseconds step_timeout = std::chrono::seconds{120};
  /// How long a request waits for every expert to have a live host.
  std::chrono::milliseconds ready_timeout = std::chrono::seconds{30};
  /// Requests waiting beyond the running batch; more are refused.
  size_t max_queue = 256;
  /// Sequences computed together in one step.
  size_t max_batch = 64;
  /// Prompt tokens of one sequence per step: long prompts are prefilled in
  /// chunks so that they do not stall the decodes running beside them.
  int64_t prefill_chunk = 512;
  /// Where the engine reports; may be null.
  std::shared_ptr<node_metrics> metrics;
};

/// Upper bound of generate_request::n.
constexpr uint32_t max_sequences_per_request = 64;

/// A request waiting for its turn.
struct queued_generation {
  generate_request request;
  caf::typed_response_promise<generate_result> promise;
  std::chrono::steady_clock::time_point arrived;
};

/// A request being answered: what its sequences (one, or `n` for parallel
/// sampling) produced so far. The sequences share it.
struct request_group {
  queued_generation origin;
  /// The answer being built: prompt logits, routing, timings, KV usage; each
  /// sequence adds its tokens when it finishes.
  generate_result result;
  std::vector<float> all_logits; // [n_prompt, vocab] when asked
  std::vector<int32_t> routing; // [n_layers, n_prompt, k] when asked
  /// The prompt's logits are in `result` (and the other sequences forked).
  bool prefilled = false;
  /// Sequences running or preempted.
  size_t unfinished = 0;
  /// The promise was delivered (the answer, or the first error).
  bool answered = false;
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point prefill_done;

  const generate_request& request() const {
    return origin.request;
  }
};

/// One sequence in the running batch (or preempted, waiting to resume).
struct running_sequence {
  std::shared_ptr<request_group> group;
  /// Which of the request's `n` sequences (also its random stream).
  uint32_t index = 0;
  /// Physical page of each logical page, from the KV page manager.
  std::vector<int32_t> block_table;
  std::vector<int32_t> tokens; // prompt followed by generated tokens
  int64_t prompt_len = 0;
  /// Tokens whose K/V are in the cache; the next step computes from here.
  int64_t computed = 0;
  /// Tokens the KV page manager knows (the prompt, then sampled tokens as
  /// they are committed).
  int64_t announced = 0;
  /// This sequence's share of the request's KV usage.
  kv_usage kv;
  /// Draws the next tokens (its own random stream, from the request's seed).
  token_sampler sampler{0, 0};

  const generate_request& request() const {
    return group->request();
  }

  int64_t generated() const {
    return static_cast<int64_t>(tokens.size()) - prompt_len;
  }
};

/// Rows of one request to one host, in flight.
struct dispatch_part {
  uint64_t host = 0;
  std::vector<size_t> plan_entries; // indices into the layer's dispatch_plan
  int64_t rows = 0;
  int attempt = 0;
  /// Hosts that already failed these rows; retries go elsewhere if possible.
  std::vector<uint64_t> failed_hosts;
  /// When the rows were sent; the timer fails the part after step_timeout.
  std::chrono::steady_clock::time_point sent;
};

/// One layer's expert work in flight: the MoE input, who computes what, and the
/// outputs gathered so far. Parts whose host fails are re-sent to replicas.
struct layer_dispatch {
  int64_t layer = 0;
  /// The gating actor has not answered yet; it was asked at `routing_sent`.
  /// Its answer counts only if it carries `routing_id`.
  bool routing_pending = true;
  uint64_t routing_id = 0;
  std::chrono::steady_clock::time_point routing_sent;
  std::vector<float> x; // [n, hidden] MoE input
  dispatch_plan plan; // rows grouped by expert
  std::vector<int64_t> first_row; // [plan entries] first grouped row
  std::vector<float> topk_weights; // [n, k]
  std::vector<float> expert_out; // [n * k, hidden]
  /// Parts in flight, by an id unique in the engine's life (a late answer to
  /// a part that timed out can never match a later one).
  std::map<uint64_t, dispatch_part> parts;
};

/// One step of the running batch: every sequence's next rows (a prompt chunk
/// or its last token) computed through all layers together.
struct engine_step {
  step_batch batch;
  std::vector<uint64_t> sequence_ids; // [batch.sequences.size()]
  std::vector<float> hidden; // [rows, hidden]
  std::unique_ptr<layer_dispatch> dispatch;
};

/// State of the engine actor.
struct engine_state {
  std::shared_ptr<const dense_weights> weights;
  gating_actor gating;
  expert_pool pool;
  std::optional<kv_cache> cache;
  engine_options options;
  std::deque<queued_generation> queue;
  /// The running batch, by sequence id (ids grow with admission).
  std::map<uint64_t, running_sequence> running;
  /// Sequences whose pages were taken for others; they resume (oldest id
  /// first, before new requests) by recomputing their tokens.
  std::map<uint64_t, running_sequence> preempted;
  /// Progress and finished sequences for the page manager, sent together
  /// (`kv_sync`) before the next admission or step.
  std::vector<kv_commit> pending_commits;
  std::vector<uint64_t> pending_releases;
  std::unique_ptr<engine_step> step;
  /// Owns the KV pages' policy (sharing, prefix cache, eviction); the float
  /// storage stays in `cache`.
  kv_page_manager_actor kv;
  /// An admission is in flight.
  bool admitting = false;
  /// The pool had no room for the next request: no admission until a running
  /// sequence has released its pages.
  bool admission_blocked = false;
  std::vector<caf::typed_response_promise<bool>> ready_waiters;
  std::vector<caf::typed_response_promise<bool>> drain_waiters;
  bool tick_scheduled = false;
  /// Ids of gating and expert requests (see layer_dispatch).
  uint64_t next_request_id = 1;
  uint64_t next_sequence = 1;
  uint64_t completed = 0;
  uint64_t failed = 0;
  uint64_t refused = 0;
  uint64_t preemptions = 0;

  static inline const char* name = "volt.engine";
};

using engine_pointer = engine_actor::stateful_pointer<engine_state>;

/// Owns generation requests and runs the layer loop with continuous batching:
/// requests join the running batch at the next step, and each step computes
/// every running sequence's next rows together (one message per expert host
/// per layer for the whole batch): attention here, routing on the gating
/// actor, expert FFNs on the hosts (replicas picked by load), combine here.
/// Hosts join with `host_atom` and are monitored: the work of a host that dies
/// is re-sent to a replica. Requests wait (up to ready_timeout) while some
/// expert has no live host; beyond max_queue waiting requests are refused.
engine_actor::behavior_type
engine(engine_pointer self, std::shared_ptr<const dense_weights> weights,
       gating_actor gating, std::vector<expert_host> hosts,
       engine_options options);

} // namespace volt
