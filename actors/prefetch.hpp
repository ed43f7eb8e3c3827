#pragma once

#include <array>
#include <memory>
#include <vector>

#include "actors/type_ids.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "net/metrics.hpp"
#include "prefetch/expert_predictor.hpp"

namespace volt {

/// State of the prefetch actor.
struct prefetch_state {
  /// Counts since start: [n_layers][predictor].
  std::vector<std::array<prefetch::prefetch_counts, prefetch::predictor_count>>
    totals;
  /// Where the counts go as they come; may be null.
  std::shared_ptr<node_metrics> metrics;

  static inline const char* name = "volt.prefetch";
};

using prefetch_pointer = prefetch_actor::stateful_pointer<prefetch_state>;

/// The step's scores as the engine sends them.
prefetch_report make_prefetch_report(const prefetch::step_scores& scores);

/// Keeps the prefetch predictor's scores for a model of `n_layers` layers.
/// The predictor itself runs inside each step as plain calls on the
/// executor's thread: the cross-layer prediction reads the hidden state
/// between two layers and the n-gram reads the token the step is about to
/// compute, so a message per layer, or a predictor in another actor, would
/// either stall the step or predict from staler input. What costs time but
/// is not needed within the step moves here, one message per step: the
/// totals, /metrics, and the status line. Reports with another layer count
/// are dropped.
prefetch_actor::behavior_type prefetch_tracker(prefetch_pointer self, int64_t n_layers,
                                       std::shared_ptr<node_metrics> metrics);

} // namespace volt
