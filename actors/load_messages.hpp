#pragma once

// What an engine reports about its load when asked with `load_atom`
// (actors/type_ids.hpp): the autoscaler samples it, and any other observer
// may.

#include <cstdint>
#include <string>
#include <vector>

#include "caf/meta/type_name.hpp"

namespace volt {

/// One expert host as the engine sees it.
struct host_load {
  /// Where it lives: "local" or the node's "host:port".
  std::string name;
  /// The experts it hosts, ascending.
  std::vector<uint32_t> experts;
  /// Token rows sent to it since it joined (retries included): its node's
  /// share of the work.
  uint64_t rows = 0;
  /// Rows sent to it and not answered yet.
  int64_t inflight_rows = 0;
  /// It is being retired.
  bool retiring = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, host_load& x) {
  return f(caf::meta::type_name("volt.host_load"), x.name, x.experts, x.rows,
           x.inflight_rows, x.retiring);
}

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
  /// Every expert host, oldest first.
  std::vector<host_load> hosts;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, engine_load& x) {
  return f(caf::meta::type_name("volt.engine_load"), x.queued, x.running,
           x.expert_rows, x.expert_hosts, x.hosts);
}

} // namespace volt
