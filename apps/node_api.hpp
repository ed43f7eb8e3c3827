#pragma once

#include <memory>

#include "actors/type_ids.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"
#include "config/node_config.hpp"
#include "http/api_server.hpp"
#include "model/checkpoint.hpp"
#include "net/metrics.hpp"

namespace volt {

/// Starts the OpenAI-compatible API of a standalone or router node on
/// [http] host:port in front of `engine`; null when [http] port is 0. Loads
/// the checkpoint's tokenizer and chat template first: a broken tokenizer is
/// an error, a missing one or an unknown template only turns the text or
/// chat endpoints off (logged as a warning naming [http] chat_template).
caf::expected<std::unique_ptr<http::api_server>>
start_node_api(caf::actor_system& sys, const node_config& cfg,
               const checkpoint& ckpt, const engine_actor& engine,
               std::shared_ptr<node_metrics> metrics);

} // namespace volt
