#pragma once

#include <memory>

#include "actors/type_ids.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "config/endpoint.hpp"
#include "net/metrics.hpp"
#include "net/redis_client.hpp"
#include "net/signed_worker_record.hpp"

namespace volt {

/// What a registrar needs to know.
struct registrar_options {
  redis_target redis;
  worker_record record;
  std::chrono::milliseconds heartbeat{500};
  std::chrono::milliseconds ttl{3000};
  /// Source of the record's load field; may be null.
  std::shared_ptr<node_metrics> metrics;
  /// [security] cluster_secret: signs the record
  /// (net/signed_worker_record.hpp); empty leaves it unsigned.
  std::string secret;
};

/// State of the registrar actor.
struct registrar_state {
  registrar_options options;
  std::optional<redis_client> redis;
  bool registered = false;
  bool leaving = false;
  int failures = 0;
  uint64_t last_rows = 0;
  std::chrono::steady_clock::time_point last_beat;

  static inline const char* name = "volt.registrar";
};

using registrar_pointer = registrar_actor::stateful_pointer<registrar_state>;

/// Keeps a worker's record in Redis: SET with a TTL on every heartbeat, which
/// also re-creates it after Redis restarts, and "join" / "leave" on the
/// workers channel. Redis being down is logged and retried with back-off.
/// Runs detached: hiredis calls block (with timeouts).
registrar_actor::behavior_type registrar(registrar_pointer self,
                                         registrar_options options);

} // namespace volt
