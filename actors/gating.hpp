#pragma once

#include <memory>

#include "actors/type_ids.hpp"
#include "model/mixtral.hpp"

namespace volt {

/// Routes token rows: softmax over the layer's router logits, top-k,
/// renormalised weights. Rejects a layer outside the model or rows whose width
/// is not the hidden size.
gating_actor::behavior_type
gating(gating_actor::pointer self,
       std::shared_ptr<const dense_weights> weights);

} // namespace volt
