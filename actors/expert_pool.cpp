#include "actors/expert_pool.hpp"

#include <algorithm>
#include <tuple>

namespace volt {

std::pair<uint64_t, std::vector<uint32_t>> expert_pool::add(expert_host host) {
  std::vector<uint32_t> ignored;
  std::vector<uint32_t> kept;
  for (auto e : host.experts)
    (e < n_experts_ ? kept : ignored).push_back(e);
  std::sort(kept.begin(), kept.end());
  kept.erase(std::unique(kept.begin(), kept.end()), kept.end());
  host.experts = std::move(kept);
  auto id = next_id_++;
  hosts_.emplace(id, std::move(host));
  return {id, ignored};
}

bool expert_pool::remove(uint64_t id) {
  by_host_.forget(id);
  return hosts_.erase(id) > 0;
}

void expert_pool::sent(uint64_t id, const std::vector<uint32_t>& expert_ids,
                       const std::vector<uint32_t>& row_counts, int64_t rows,
                       traffic_window::clock_type::time_point now) {
  hosts_.at(id).rows_sent += static_cast<uint64_t>(rows);
  by_host_.add(id, rows, now);
  for (size_t i = 0; i < expert_ids.size(); ++i)
    by_expert_.add(expert_ids[i], row_counts[i], now);
}

std::optional<uint64_t> expert_pool::find(const caf::actor_addr& handle) const {
  for (const auto& [id, host] : hosts_)
    if (host.handle.address() == handle)
      return id;
  return std::nullopt;
}

std::optional<uint64_t>
expert_pool::pick(uint32_t expert, const std::vector<uint64_t>& avoid) const {
  // Order: not avoided, then not retiring, then fewer rows in flight, then
  // least recently picked; hosts_ iterates oldest first, so the oldest wins
  // remaining ties.
  std::optional<uint64_t> best;
  std::tuple<bool, bool, int64_t, uint64_t> best_key;
  for (const auto& [id, host] : hosts_) {
    if (!std::binary_search(host.experts.begin(), host.experts.end(), expert))
      continue;
    bool avoided = std::find(avoid.begin(), avoid.end(), id) != avoid.end();
    auto key = std::make_tuple(avoided, host.retiring, host.inflight_rows,
                               host.last_pick);
    if (!best || key < best_key) {
      best = id;
      best_key = key;
    }
  }
  return best;
}

size_t expert_pool::remote_count() const {
  return static_cast<size_t>(
    std::count_if(hosts_.begin(), hosts_.end(),
                  [](const auto& kv) { return kv.second.name != "local"; }));
}

std::vector<uint32_t> expert_pool::missing() const {
  std::vector<bool> served(n_experts_, false);
  for (const auto& [id, host] : hosts_)
    for (auto e : host.experts)
      served[e] = true;
  std::vector<uint32_t> result;
  for (uint32_t e = 0; e < n_experts_; ++e)
    if (!served[e])
      result.push_back(e);
  return result;
}

std::vector<uint32_t> expert_pool::live_hosts_per_expert() const {
  std::vector<uint32_t> count(n_experts_, 0);
  for (const auto& [id, host] : hosts_)
    if (!host.retiring)
      for (auto e : host.experts)
        ++count[e];
  return count;
}

std::vector<uint32_t> expert_pool::served_only_by(uint64_t id) const {
  auto count = live_hosts_per_expert();
  const auto& host = hosts_.at(id);
  auto itself = host.retiring ? 0u : 1u;
  std::vector<uint32_t> result;
  for (auto e : host.experts)
    if (count[e] - itself == 0)
      result.push_back(e);
  return result;
}

std::string expert_pool::render(const std::vector<uint32_t>& ids) {
  std::string out;
  for (auto id : ids)
    out += (out.empty() ? "" : ", ") + std::to_string(id);
  return out;
}

} // namespace volt
