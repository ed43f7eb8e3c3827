#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "actors/traffic_window.hpp"
#include "actors/type_ids.hpp"

namespace volt {

/// One actor that hosts experts, local or on another node.
struct expert_host {
  expert_actor handle;
  /// Global ids of the experts it hosts, ascending.
  std::vector<uint32_t> experts;
  /// Where it lives, for logs and metrics: "local", or the node's "host:port".
  std::string name;
  /// Token rows sent to it and not yet answered: its load.
  int64_t inflight_rows = 0;
  /// When it was last picked (a counter); breaks ties between equally loaded
  /// replicas so that they take turns.
  uint64_t last_pick = 0;
  /// It is being retired (by the autoscaler) or drained (by an operator):
  /// picked only for an expert no other host serves, and removed once its
  /// rows in flight are answered.
  bool retiring = false;
  /// Token rows sent to it since it joined, retries included.
  uint64_t rows_sent = 0;
};

/// The engine's view of who hosts which expert. Replicas of an expert are
/// picked by load: fewest in-flight rows, then the least recently picked, then
/// the oldest host; the choice is deterministic for a given history. Hosts
/// being retired come after all others.
class expert_pool {
public:
  explicit expert_pool(uint32_t n_experts = 0) : n_experts_(n_experts) {}

  /// Adds a host; experts outside the model are ignored (and returned).
  std::pair<uint64_t, std::vector<uint32_t>> add(expert_host host);

  /// Removes the host with this id; false if unknown.
  bool remove(uint64_t id);

  /// Returns the id of the host of `handle`, if any.
  std::optional<uint64_t> find(const caf::actor_addr& handle) const;

  /// Picks the least-loaded host of `expert`, avoiding the hosts in `avoid`
  /// unless no other serves it; nothing when no host serves it at all.
  std::optional<uint64_t> pick(uint32_t expert,
                               const std::vector<uint64_t>& avoid = {}) const;

  expert_host& host(uint64_t id) {
    return hosts_.at(id);
  }

  /// Records that `id` was just picked.
  void picked(uint64_t id) {
    hosts_.at(id).last_pick = ++picks_;
  }

  /// Records one batch sent to host `id`: `row_counts[i]` rows for expert
  /// `expert_ids[i]` (for the recent rates an operator asks for).
  void sent(uint64_t id, const std::vector<uint32_t>& expert_ids,
            const std::vector<uint32_t>& row_counts, int64_t rows,
            traffic_window::clock_type::time_point now);

  /// Batches and rows per second recently sent for `expert`.
  traffic_window::rates
  expert_rates(uint32_t expert, traffic_window::clock_type::time_point now) const {
    return by_expert_.rate(expert, now);
  }

  /// Batches and rows per second recently sent to host `id`.
  traffic_window::rates
  host_rates(uint64_t id, traffic_window::clock_type::time_point now) const {
    return by_host_.rate(id, now);
  }

  const std::map<uint64_t, expert_host>& hosts() const {
    return hosts_;
  }

  /// Hosts on other nodes (not named "local").
  size_t remote_count() const;

  /// Experts that no host serves, ascending.
  std::vector<uint32_t> missing() const;

  /// Experts that only host `id` serves among the hosts not being retired,
  /// ascending: retiring it would leave them without a host.
  std::vector<uint32_t> served_only_by(uint64_t id) const;

  /// Hosts not being retired per expert, indexed by expert id.
  std::vector<uint32_t> live_hosts_per_expert() const;

  /// Renders ids as "4, 5, 6" for messages.
  static std::string render(const std::vector<uint32_t>& ids);

private:
  uint32_t n_experts_;
  uint64_t next_id_ = 1;
  uint64_t picks_ = 0;
  std::map<uint64_t, expert_host> hosts_;
  traffic_window by_expert_;
  traffic_window by_host_;
};

} // namespace volt
