#pragma once

#include <memory>

#include "actors/type_ids.hpp"
#include "model/mixtral.hpp"
#include "net/metrics.hpp"

namespace volt {

/// Checks every field of `batch` against what `hosted` are (layer, counts,
/// the rows' dtype and shape, hosted experts); shared by the CPU and CUDA
/// actors.
caf::error check_expert_batch(const hosted_experts& hosted,
                              const expert_batch& batch);

/// The hello of an actor hosting `hosted`: its experts and their checkpoint.
expert_hello hello_of(const hosted_experts& hosted);

/// Hosts a set of experts for every layer and runs their SwiGLU FFN over
/// batches of token rows grouped by expert. Every field of a batch is checked
/// before any compute: the bytes may come from another node.
expert_actor::behavior_type
expert(expert_actor::pointer self,
       std::shared_ptr<const expert_weights> weights);

/// Same as `expert`, counting every expert's batches and rows in `metrics`.
expert_actor::behavior_type
metered_expert(expert_actor::pointer self,
               std::shared_ptr<const expert_weights> weights,
               std::shared_ptr<node_metrics> metrics);

} // namespace volt
