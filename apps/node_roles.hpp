#pragma once

#include "config/node_config.hpp"
#include "model/checkpoint.hpp"

namespace volt {

/// Runs a node of the role `cfg` names until SIGINT or SIGTERM, then shuts it
/// down gracefully: in-flight work finishes, a worker leaves Redis. Every role
/// logs one line containing "ready" once it serves. Returns the exit code.
int run_node(const node_config& cfg, const checkpoint& ckpt);

} // namespace volt
