#pragma once

// What an engine reports about its load when asked with `load_atom`
// (actors/type_ids.hpp): the autoscaler samples it, and any other observer
// may.

#include <cstdint>
#include <vector>

#include "caf/meta/type_name.hpp"

namespace volt {

/// An engine's load now, with counters since its start (observers take
/// rates from the difference of two answers).
struct engine_load {
  /// Requests waiting for a batch slot: queued, and preempted sequences'
  /// requests waiting to resume.
  uint64_t queued = 0;
  /// Sequences in the running batch.
  uint64_t running = 0;
  /// Token rows sent to expert hosts for each expert since the engine
  /// started, summed over layers (first tries only, not failover re-sends);
  /// indexed by global expert id. Experts the executor computes itself count
  /// nothing here.
  std::vector<uint64_t> expert_rows;
  /// Live hosts of each expert, indexed by global expert id; hosts that are
  /// being retired do not count.
  std::vector<uint32_t> expert_hosts;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, engine_load& x) {
  return f(caf::meta::type_name("volt.engine_load"), x.queued, x.running,
           x.expert_rows, x.expert_hosts);
}

} // namespace volt
