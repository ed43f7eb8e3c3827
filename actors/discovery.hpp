#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "actors/replicas.hpp"
#include "actors/type_ids.hpp"
#include "base/log_throttle.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "caf/typed_response_promise.hpp"
#include "config/endpoint.hpp"
#include "config/node_config.hpp"
#include "net/redis_client.hpp"

namespace volt {

/// Where a router finds its expert hosts.
struct discovery_options {
  discovery_mode mode = discovery_mode::static_list;
  /// Workers that publish expert actors ([router] workers).
  std::vector<std::string> workers;
  /// Experts to spawn on nodes ([router] placement).
  std::vector<placement_entry> placement;
  /// Redis server for mode redis.
  redis_target redis;
  /// How often to poll Redis and retry unreachable workers.
  std::chrono::milliseconds poll{250};
  /// Bound on one connect or remote spawn.
  std::chrono::milliseconds connect_timeout{3000};
  /// The router's checkpoint fingerprint: a host whose hello names another
  /// is refused, and placed experts are spawned only on nodes that hold it.
  std::string checkpoint;
  /// [security] cluster_secret: Redis records must be signed with it (and
  /// not expired); empty accepts every well-formed record.
  std::string secret;
  /// Bound on a spawn asked for with place_atom: the node loads the experts'
  /// weights before it answers.
  std::chrono::milliseconds place_timeout{300000};
};

/// One place an expert host comes from.
struct discovery_target {
  /// Its key among the targets: the node's name, with the experts for those
  /// spawned on request (a node may host several spawned sets).
  std::string key;
  std::string name; // "host:port"
  endpoint where;
  std::vector<uint32_t> spawn; // experts to spawn there; empty: connect only
  expert_actor handle; // set while connected
  bool busy = false; // a connect or spawn is in flight
  int failures = 0;
  std::chrono::steady_clock::time_point next_try;
  /// Its node refused the spawn for good (experts outside its model): not
  /// tried again.
  bool given_up = false;
  /// Found in Redis: forgotten once its record is gone and it is not
  /// connected (a worker that left is not retried forever).
  bool from_redis = false;
  /// The fingerprint of another checkpoint it answered with, so that its
  /// refusal is logged once rather than on every retry.
  std::string refused_checkpoint;
  /// What its host said it hosts, once connected.
  std::vector<uint32_t> hosted;
  /// The node's [node] id, when its Redis record names it.
  std::string id;
  /// The last error reaching it, for inspection.
  std::string last_error;
  /// Answers a place_atom request once the host joined the engine or the
  /// spawn failed (then the target is dropped: a spawn asked for is tried
  /// once).
  std::optional<caf::typed_response_promise<std::string>> placed;
  std::chrono::steady_clock::time_point placed_deadline;
};

/// State of the discovery actor.
struct discovery_state {
  discovery_options options;
  engine_actor engine;
  std::map<std::string, discovery_target> targets;
  std::optional<redis_client> redis;
  int redis_failures = 0;
  /// Redis keys whose record was refused (forged, unsigned, expired): each
  /// is logged once, until it is gone or valid again.
  std::set<std::string> refused_records;
  /// Bounds the lines about refused records when many keys are bad.
  std::shared_ptr<log_throttle> refusal_log = std::make_shared<log_throttle>();
  /// Nodes released on request: not taken from Redis again until experts
  /// are placed there on request.
  std::set<std::string> released;

  static inline const char* name = "volt.discovery";
};

using discovery_pointer = discovery_actor::stateful_pointer<discovery_state>;

/// Finds expert hosts and hands them to `engine`: connects to static workers,
/// spawns placed experts on their nodes, or follows the workers registered in
/// Redis. Unreachable targets are retried with back-off; a host that goes down
/// is reconnected (or re-spawned) when its node comes back. On request it
/// spawns experts on a node (place_atom: tried once; once they serve, they
/// are re-spawned like a placement), forgets a node (release_atom: the
/// actors it spawned there are stopped) and lists its targets
/// (inspect_atom). Runs detached: Redis calls block (with timeouts).
discovery_actor::behavior_type discovery(discovery_pointer self,
                                         engine_actor engine,
                                         discovery_options options);

} // namespace volt
