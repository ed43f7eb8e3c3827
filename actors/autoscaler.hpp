#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/autoscale_policy.hpp"
#include "actors/type_ids.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "config/endpoint.hpp"
#include "net/metrics.hpp"

namespace volt {

/// What the autoscaler watches and may do ([autoscaler] keys).
struct autoscaler_options {
  /// When to act.
  autoscale_thresholds thresholds;
  /// How often the engine's load is sampled.
  std::chrono::milliseconds interval{1000};
  /// Bound on reaching a spare node, spawning there and hearing back; also
  /// on the engine's answers.
  std::chrono::milliseconds spawn_timeout{10000};
  /// Bare worker nodes replicas are spawned on (empty: none, as on a
  /// standalone node, which computes every expert itself).
  std::vector<endpoint> spare_nodes;
  /// This node's checkpoint fingerprint: a spare node on another checkpoint
  /// refuses the spawn.
  std::string checkpoint;
  /// Replicas of one expert the autoscaler adds at most.
  uint32_t max_replicas_per_expert = 1;
  /// [node] id, named in every event.
  std::string node;
  /// Latency histogram source and where actions are counted; may be null
  /// (then latency is not watched).
  std::shared_ptr<node_metrics> metrics;
};

/// Expert replicas the autoscaler spawned on one spare node.
struct replica_set {
  /// The spare node, "host:port".
  std::string node;
  std::vector<uint32_t> experts;
  /// Set once the node confirmed the spawn.
  expert_actor handle;
  /// Asked to retire (the engine drains it first).
  bool retiring = false;
};

/// State of the autoscaler actor.
struct autoscaler_state {
  autoscaler_options options;
  engine_actor engine;
  /// May be null: no webhook.
  webhook_actor webhook;
  std::unique_ptr<autoscale_policy> policy;
  /// A load request to the engine is out.
  bool sampling = false;
  /// In the order they were added; the newest is retired first.
  std::vector<replica_set> replicas;
  /// When a spawn on a spare node last failed: such nodes are tried last.
  std::map<std::string, std::chrono::steady_clock::time_point> spare_failures;

  static inline const char* name = "volt.autoscaler";
};

using autoscaler_pointer = autoscaler_actor::stateful_pointer<autoscaler_state>;

/// Samples `engine`'s load (queue depth, per-expert rows) and the node's
/// latency histogram every interval and follows autoscale_policy: a
/// scale_up posts an event to `webhook` and, with spare nodes left, spawns
/// replicas of the hottest experts on one of them and hands them to the
/// engine; a scale_down retires the newest replicas (drained first, so no
/// request fails or changes) and posts an event. Decisions are logged and
/// counted. At exit it stops the replicas it still has.
autoscaler_actor::behavior_type
autoscaler(autoscaler_pointer self, engine_actor engine, webhook_actor webhook,
           autoscaler_options options);

} // namespace volt
