#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "actors/type_ids.hpp"
#include "caf/actor_system.hpp"
#include "config/endpoint.hpp"
#include "net/metrics.hpp"

namespace volt::http {

/// Where and how events are POSTed ([autoscaler] webhook_* keys).
struct webhook_options {
  http_url url;
  /// Bound on each of connecting, sending and waiting for the answer.
  std::chrono::milliseconds timeout{2000};
  /// POSTs of one event after its first failed one.
  uint32_t retries = 3;
  /// Wait before the first retry, doubled before each later one.
  std::chrono::milliseconds backoff{500};
  /// Counts every POST by outcome; may be null.
  std::shared_ptr<node_metrics> metrics;
};

/// Spawns the webhook poster: a detached actor (its blocking POSTs never
/// hold a thread of CAF's scheduler, so serving never waits for them) that
/// POSTs each event as application/json, in the order they came. A POST
/// fails on a connection error, a timeout or a status other than 2xx; a
/// failed event is retried after the back-off, at most `retries` times,
/// then dropped. Every failure is logged (the URL's path, which may hold a
/// secret, never is) and counted.
webhook_actor spawn_webhook(caf::actor_system& sys, webhook_options options);

} // namespace volt::http
