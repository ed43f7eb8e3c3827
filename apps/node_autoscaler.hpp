#pragma once

#include <memory>

#include "actors/type_ids.hpp"
#include "caf/actor_system.hpp"
#include "config/node_config.hpp"
#include "net/metrics.hpp"

namespace volt {

/// The autoscaler of a router or standalone node and its webhook poster,
/// both null when [autoscaler] enabled is false.
struct node_autoscaler {
  autoscaler_actor scaler;
  webhook_actor webhook;

  /// Stops both; the autoscaler stops the replicas it added. Call it once
  /// the engine is drained, so that no request still needs them.
  void stop();
};

/// Starts the autoscaler from [autoscaler] for `engine`. `replicate`: the
/// node's experts live on expert hosts (a router), so replicas on spare
/// nodes take load; a standalone node computes them itself and only posts
/// the webhook (spare_nodes are ignored, with a warning). `checkpoint` is
/// the node's fingerprint, which spare nodes must share.
node_autoscaler start_autoscaler(caf::actor_system& sys, const node_config& cfg,
                                 const engine_actor& engine,
                                 std::shared_ptr<node_metrics> metrics,
                                 bool replicate,
                                 const std::string& checkpoint);

} // namespace volt
