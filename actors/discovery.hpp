#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "actors/replicas.hpp"
#include "actors/type_ids.hpp"
#include "caf/typed_event_based_actor.hpp"
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
};

/// One place an expert host comes from.
struct discovery_target {
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
};

/// State of the discovery actor.
struct discovery_state {
  discovery_options options;
  engine_actor engine;
  std::map<std::string, discovery_target> targets;
  std::optional<redis_client> redis;
  int redis_failures = 0;

  static inline const char* name = "volt.discovery";
};

using discovery_pointer = discovery_actor::stateful_pointer<discovery_state>;

/// Finds expert hosts and hands them to `engine`: connects to static workers,
/// spawns placed experts on their nodes, or follows the workers registered in
/// Redis. Unreachable targets are retried with back-off; a host that goes down
/// is reconnected (or re-spawned) when its node comes back. Runs detached:
/// Redis calls block (with timeouts).
discovery_actor::behavior_type discovery(discovery_pointer self,
                                         engine_actor engine,
                                         discovery_options options);

} // namespace volt
