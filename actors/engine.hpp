#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/degraded_routing.hpp"
#include "actors/discovery.hpp"
#include "actors/expert_dispatch.hpp"
#include "actors/expert_pool.hpp"
#include "actors/type_ids.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "caf/typed_response_promise.hpp"
#include "engine/scheduler.hpp"
#include "model/executor.hpp"
#include "net/metrics.hpp"
#include "prefetch/expert_predictor.hpp"

namespace volt {

/// Tunables of the engine.
struct engine_options {
  /// Tokens per KV page.
  int64_t page_size = 16;
  /// Pages in the KV pool; 0 means enough for one sequence of the model's full
  /// context. Executors are built with these two (the engine takes the pool
  /// its executor has).
  int64_t num_pages = 0;
  /// How long one expert request to another actor may take before it counts
  /// as failed (and is retried on a replica). Checked by the engine's timer,
  /// which runs every quarter of this (at most every 250 ms) while rows are
  /// out, not by a timeout per request: each of those woke CAF's clock
  /// thread twice, which made a one-request decode step twice as slow.
  std::chrono::milliseconds step_timeout = std::chrono::seconds{120};
  /// How long a request waits for every expert to have a live host.
  std::chrono::milliseconds ready_timeout = std::chrono::seconds{30};
  /// What requests do when an expert they are routed to has no live host
  /// (see degraded_routing); with renormalize, the start's wait for every
  /// expert lasts ready_timeout.
  missing_expert_policy on_missing_expert = missing_expert_policy::fail;
  /// Experts left out of every step's routing, as if they had no host (the
  /// reference run of `generate --mask-experts`).
  std::vector<uint32_t> masked_experts;
  /// Batching (the executor's max_step_rows is filled in by the engine).
  scheduler_options batching;
  /// Where the engine reports; may be null.
  std::shared_ptr<node_metrics> metrics;
  /// The prefetch predictor's tunables ([prefetch]); nullopt runs none.
  std::optional<prefetch::predictor_options> prefetch;
  /// With the predictor: each expert host gets, with a layer's rows, the
  /// experts it hosts that the predictor expects the next layer to use
  /// ([prefetch] stage_experts), for a GPU expert cache to copy them in.
  bool stage_on_hosts = false;
  /// Receives the predictor's scores after each step; spawn_engine spawns
  /// one when `prefetch` is set and this is null.
  prefetch_actor prefetcher;
  /// The node's [node] id and role, for inspection.
  std::string node_id;
  std::string role = "standalone";
  /// A router's: the engine spawns a discovery actor with these options (it
  /// finds the expert hosts, and places experts on request) and stops it
  /// when it stops itself.
  std::optional<discovery_options> discovery;
};

/// A drain of one node's expert hosts, waiting for their rows in flight.
struct pending_drain {
  std::string node;
  std::vector<uint64_t> hosts;
  std::vector<uint32_t> experts;
  caf::typed_response_promise<std::vector<uint32_t>> promise;
};

/// Timing of the running step, for the step metrics.
struct step_timing {
  engine_clock::time_point started;
  /// When the current layer's rows went to expert hosts.
  engine_clock::time_point rows_sent;
  /// Time spent waiting for expert hosts' answers so far.
  double wait_seconds = 0;
  size_t rows = 0;
  /// Every sequence of the step computes one row.
  bool decode = false;
};

/// State of the engine actor.
struct engine_state {
  std::shared_ptr<model_executor> exec;
  std::unique_ptr<scheduler> sched;
  expert_pool pool;
  engine_options options;
  /// A step is in the executor (or its rows at expert hosts).
  bool step_running = false;
  /// A step_atom to self is pending.
  bool step_scheduled = false;
  step_timing timing;
  /// Rows of the current step's layer at expert hosts.
  std::unique_ptr<expert_dispatch> dispatch;
  /// Experts without a live host: whether requests run, and without which
  /// experts each step routes.
  degraded_routing routing;
  /// The experts the current step runs without, and (when renormalising) the
  /// step itself, to run again without an expert that lost its last host
  /// mid-step.
  std::vector<uint32_t> step_mask;
  std::optional<step_request> step_copy;
  std::vector<caf::typed_response_promise<bool>> ready_waiters;
  std::vector<caf::typed_response_promise<bool>> drain_waiters;
  bool tick_scheduled = false;
  /// Sinks of streamed requests, monitored while they have unanswered
  /// requests: requests of each.
  std::map<caf::actor_addr, size_t> sinks;
  /// Predicts each step's experts; null when [prefetch] is off.
  std::unique_ptr<prefetch::expert_predictor> predictor;
  /// The executor reports each layer's routing to the predictor as it runs;
  /// otherwise steps record their routing and the engine hands it over.
  bool predictor_hooked = false;
  /// Set when the engine must not compute again (its checkpoint changed on
  /// disk): every request is answered with it.
  caf::error stopped;
  /// The router's discovery actor (options.discovery), else null.
  discovery_actor finder;
  /// Drains waiting for their hosts' rows in flight.
  std::vector<pending_drain> drains;
  /// Token rows sent to expert hosts per expert since start (engine_load).
  std::vector<uint64_t> routed_rows;
  /// Hosts being retired, by pool id: the answers owed once their rows in
  /// flight are in.
  std::map<uint64_t, std::vector<caf::typed_response_promise<bool>>> retiring;

  static inline const char* name = "volt.engine";
};

using engine_pointer = engine_actor::stateful_pointer<engine_state>;

/// A thin actor over the scheduler (batching, KV policy, sampling) and a
/// model executor: requests join the running batch at the next step, and one
/// step of the executor computes every running sequence's next rows through
/// all layers. Inside one process a step is plain calls; only rows routed to
/// experts that the executor does not host leave it, one message per expert
/// host per layer (replicas picked by load, re-sent when a host fails). Hosts
/// join with `host_atom` and are monitored. Requests wait (up to
/// ready_timeout) while some expert has no live host, unless the policy
/// renormalises: then steps route around such experts (restarting a step
/// whose expert lost its last host mid-way); beyond max_queue
/// waiting requests are refused. Streamed requests send their tokens to a
/// sink actor as each step makes them; a request is cancelled by its id, or
/// when its sink goes down (it is monitored). With [prefetch] on, the
/// prefetch predictor watches every step and its scores go to the prefetch
/// actor, which ends with the engine. Operators inspect the engine, place
/// experts through its discovery and drain hosts, and the autoscaler reads
/// its load and retires hosts (actors/engine_control.hpp): a host drained or
/// retired is no longer picked (unless it is the last host of an expert),
/// its rows in flight are answered, then the engine forgets it.
/// With an executor that blocks on a device, spawn the engine detached
/// (spawn_engine does).
engine_actor::behavior_type engine(engine_pointer self,
                                   std::shared_ptr<model_executor> exec,
                                   std::vector<expert_host> hosts,
                                   engine_options options);

/// Experts without a live host and not computed by the executor.
std::vector<uint32_t> missing_experts(const engine_state& st);

/// Spawns `engine` for `exec`, detached when the executor waits on a device,
/// and the prefetch actor it reports to when options.prefetch asks for one.
engine_actor spawn_engine(caf::actor_system& sys,
                          std::shared_ptr<model_executor> exec,
                          std::vector<expert_host> hosts,
                          engine_options options);

} // namespace volt
