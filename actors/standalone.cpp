#include "actors/standalone.hpp"

#include <algorithm>
#include <thread>

#include "actors/expert.hpp"
#include "actors/gating.hpp"

namespace volt {

caf::expected<engine_actor>
spawn_standalone(caf::actor_system& sys, const checkpoint& ckpt,
                 const standalone_options& options) {
  auto dense = dense_weights::load(ckpt);
  if (!dense)
    return std::move(dense.error());
  const auto n_experts = static_cast<size_t>(ckpt.config().num_local_experts);
  auto n_actors = options.expert_actors;
  if (n_actors == 0)
    n_actors = std::max<size_t>(1, std::thread::hardware_concurrency());
  n_actors = std::min(n_actors, n_experts);
  std::vector<expert_host> hosts;
  for (size_t i = 0; i < n_actors; ++i) {
    std::vector<uint32_t> ids;
    for (auto e = i * n_experts / n_actors; e < (i + 1) * n_experts / n_actors;
         ++e)
      ids.push_back(static_cast<uint32_t>(e));
    auto weights = expert_weights::load(ckpt, ids);
    if (!weights)
      return std::move(weights.error());
    hosts.push_back(
      expert_host{sys.spawn(metered_expert, *weights, options.engine.metrics),
                  ids, "local", 0, 0});
  }
  auto gate = sys.spawn(gating, *dense);
  return sys.spawn(engine, *dense, gate, std::move(hosts), options.engine);
}

} // namespace volt
