#pragma once

// What an executor tells the prefetch predictor while a step runs, layer by
// layer, and what it gets back: the experts worth staging on the device
// before the layer's experts run. Plain calls on the executor's thread: a
// message per layer would cost more than the prediction saves.

#include <cstdint>
#include <vector>

namespace volt {

/// Watches a step's routing as the executor computes it.
class routing_observer {
public:
  virtual ~routing_observer() = default;

  /// Layer `layer` is about to run over the step's `n` rows. Returns the
  /// layer's experts to stage now, best first (an expert cache copies them
  /// while the layer's attention runs; an executor without one stages
  /// nothing).
  /// - entry_logits (in): [n, n_experts], the layer's router applied to the
  ///   hidden state entering the layer (before its attention), normalised
  ///   with the layer's post-attention norm; null when the executor does not
  ///   compute them
  virtual const std::vector<uint32_t>&
  layer_begins(int64_t layer, const float* entry_logits, int64_t n) = 0;

  /// Layer `layer` routed the step's `n` rows.
  /// - topk_ids (in): [n, k]
  virtual void layer_routed(int64_t layer, const int32_t* topk_ids,
                            int64_t n) = 0;
};

} // namespace volt
