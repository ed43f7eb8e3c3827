#pragma once

// What a router or standalone node tells an operator about itself
// (`inspect_atom`, answered by the engine; `volt-node shell` asks it). Plain
// values, filled only when asked: nothing here is kept up to date per step.

#include <cstdint>
#include <string>
#include <vector>

#include "caf/meta/type_name.hpp"
#include "model/page_table.hpp"

namespace volt {

/// One node of the cluster as the node asked sees it.
struct node_entry {
  /// The node's [node] id; empty when it is unknown (a worker found through
  /// [router] workers or placement is known by its address only; Redis
  /// records name it).
  std::string id;
  /// "standalone", "router" or "worker".
  std::string role;
  /// "host:port"; empty for the node that answers (its client knows where it
  /// connected).
  std::string address;
  /// "up" (the node that answers), "live" (its expert hosts are in use),
  /// "draining" (no new rows; released once its rows in flight are done),
  /// "connecting", "down" (unreachable, retried) or "refused" (a spawn there
  /// failed for good).
  std::string liveness;
  /// Why it is not live (the last error), or empty.
  std::string detail;
  /// Experts it hosts for the node that answers, ascending.
  std::vector<uint32_t> experts;
  /// Token rows sent to it and not answered yet.
  int64_t rows_in_flight = 0;
  /// Token rows sent to its current hosts since they joined.
  uint64_t rows_sent = 0;
  /// Token rows sent to it per second over the last few seconds.
  double rows_per_second = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_entry& x) {
  return f(caf::meta::type_name("volt.node_entry"), x.id, x.role, x.address,
           x.liveness, x.detail, x.experts, x.rows_in_flight, x.rows_sent,
           x.rows_per_second);
}

/// One expert of the model.
struct expert_entry {
  uint32_t expert = 0;
  /// Addresses of its live hosts ("local" for an actor of this process).
  std::vector<std::string> hosts;
  /// The node's executor computes it in-process: no rows leave the step, so
  /// none are counted (rows_in_flight and the rates stay 0).
  bool in_process = false;
  /// Its token rows at hosts now, not answered yet.
  int64_t rows_in_flight = 0;
  /// Batches (one per layer and host that received rows for it) and token
  /// rows sent per second over the last few seconds.
  double requests_per_second = 0;
  double rows_per_second = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, expert_entry& x) {
  return f(caf::meta::type_name("volt.expert_entry"), x.expert, x.hosts,
           x.in_process, x.rows_in_flight, x.requests_per_second,
           x.rows_per_second);
}

/// One request in the engine, not answered yet.
struct request_entry {
  uint64_t id = 0;
  /// "queued", "running" (some sequence in the batch) or "preempted" (all
  /// its unfinished sequences wait to resume).
  std::string state;
  /// Seconds since it arrived.
  double age_seconds = 0;
  int64_t prompt_tokens = 0;
  /// Tokens generated so far, summed over its sequences.
  int64_t generated_tokens = 0;
  uint32_t sequences = 1;
  int64_t max_new_tokens = 0;
  /// Its tokens go to a stream sink as they are made.
  bool streamed = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request_entry& x) {
  return f(caf::meta::type_name("volt.request_entry"), x.id, x.state,
           x.age_seconds, x.prompt_tokens, x.generated_tokens, x.sequences,
           x.max_new_tokens, x.streamed);
}

/// The engine's queue and batch.
struct queue_entry {
  int64_t queued = 0;
  int64_t max_queue = 0;
  /// Sequences in the running batch, and preempted ones waiting to resume.
  int64_t running = 0;
  int64_t preempted = 0;
  int64_t max_batch = 0;
  /// A step is being computed now.
  bool step_running = false;
  /// Requests since start.
  uint64_t completed = 0;
  uint64_t cancelled = 0;
  uint64_t failed = 0;
  uint64_t refused = 0;
  uint64_t preemptions = 0;
  /// Experts without a live host (requests wait for them).
  std::vector<uint32_t> missing_experts;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, queue_entry& x) {
  return f(caf::meta::type_name("volt.queue_entry"), x.queued, x.max_queue,
           x.running, x.preempted, x.max_batch, x.step_running, x.completed,
           x.cancelled, x.failed, x.refused, x.preemptions, x.missing_experts);
}

/// The KV page pool.
struct kv_entry {
  /// Where the pool lives: "cpu", "cuda:0".
  std::string where;
  page_table_stats pool;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_entry& x) {
  return f(caf::meta::type_name("volt.kv_entry"), x.where, x.pool);
}

/// The answer to `inspect_atom`: the node and what it knows of the cluster.
/// A discovery actor answers it too, with `nodes` only (its targets).
struct node_report {
  /// The node that answers first, then its workers.
  std::vector<node_entry> nodes;
  /// Every expert of the model, ascending.
  std::vector<expert_entry> experts;
  queue_entry queue;
  /// Requests not answered yet, oldest first.
  std::vector<request_entry> requests;
  kv_entry kv;
  /// The node's /metrics text (Prometheus' format); empty without metrics.
  std::string metrics;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_report& x) {
  return f(caf::meta::type_name("volt.node_report"), x.nodes, x.experts,
           x.queue, x.requests, x.kv, x.metrics);
}

} // namespace volt
