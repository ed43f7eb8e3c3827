#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "actors/type_ids.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"
#include "config/endpoint.hpp"

namespace volt {

/// Called with each chunk of a streamed generation, in order, on the thread
/// of the actor that receives them.
using chunk_handler = std::function<void(const generate_chunk&)>;

/// Runs one generation on `engine` (in this process or a proxy of a remote
/// one; `node` names it in errors): waits until every expert has a host
/// (until `ready_deadline`), sends the request and waits for the answer or
/// for the engine to go down. With `on_chunk` set, the request is streamed:
/// an actor of this process is its sink and hands every chunk to `on_chunk`
/// before the answer comes; when this process dies, the engine sees the sink
/// go down and cancels the request.
caf::expected<generate_result>
generate_on(caf::actor_system& sys, engine_actor engine,
            const std::string& node, const generate_request& req,
            std::chrono::steady_clock::time_point ready_deadline,
            chunk_handler on_chunk = {});

/// As `generate_on` for several requests: once the engine is ready, sends
/// them all at once (so that they can share its batches) and returns the
/// answers in their order, or the first error.
caf::expected<std::vector<generate_result>>
generate_all_on(caf::actor_system& sys, engine_actor engine,
                const std::string& node,
                const std::vector<generate_request>& reqs,
                std::chrono::steady_clock::time_point ready_deadline);

/// The engine of the node (router or standalone) at `where`, reached over
/// CAF's middleman; retries while the node is not up yet, until `deadline`.
caf::expected<engine_actor>
connect_engine(caf::actor_system& sys, const endpoint& where,
               std::chrono::steady_clock::time_point deadline);

/// Runs one generation on the node (router or standalone) at `where` over
/// CAF's middleman: connects (retrying while the node is not up yet), then
/// as `generate_on`. `wait` bounds connecting and readiness.
caf::expected<generate_result>
generate_remote(caf::actor_system& sys, const endpoint& where,
                const generate_request& req, std::chrono::milliseconds wait,
                chunk_handler on_chunk = {});

} // namespace volt
