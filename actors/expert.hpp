#pragma once

#include <memory>

#include "actors/type_ids.hpp"
#include "model/mixtral.hpp"

namespace volt {

/// Hosts a set of experts for every layer and runs their SwiGLU FFN over
/// batches of token rows grouped by expert. Every field of a batch is checked
/// before any compute: the bytes may come from another node.
expert_actor::behavior_type
expert(expert_actor::pointer self,
       std::shared_ptr<const expert_weights> weights);

} // namespace volt
