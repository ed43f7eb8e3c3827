#pragma once

#include <chrono>

#include "actors/messages.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"
#include "config/endpoint.hpp"

namespace volt {

/// Runs one generation on the node (router or standalone) at `where` over
/// CAF's middleman: connects (retrying while the node is not up yet), waits
/// until every expert has a host, sends the request and waits for the answer
/// or for the node to go down. `wait` bounds connecting and readiness.
caf::expected<generate_result>
generate_remote(caf::actor_system& sys, const endpoint& where,
                const generate_request& req, std::chrono::milliseconds wait);

} // namespace volt
