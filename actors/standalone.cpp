#include "actors/standalone.hpp"

#include <algorithm>
#include <thread>

#include "actors/cuda_expert.hpp"
#include "actors/expert.hpp"
#include "actors/gating.hpp"

namespace volt {

caf::expected<expert_actor>
spawn_expert_host(caf::actor_system& sys,
                  std::shared_ptr<const expert_weights> weights, int device,
                  weight_quantization quantization,
                  std::shared_ptr<node_metrics> metrics,
                  const std::string& device_origin) {
  if (device < 0)
    return sys.spawn(metered_expert, std::move(weights), std::move(metrics));
  return spawn_cuda_expert(sys, std::move(weights), device, quantization,
                           device_origin);
}

caf::expected<engine_actor>
spawn_standalone(caf::actor_system& sys, const checkpoint& ckpt,
                 const standalone_options& options) {
  auto dense = dense_weights::load(ckpt);
  if (!dense)
    return std::move(dense.error());
  const auto n_experts = static_cast<size_t>(ckpt.config().num_local_experts);
  auto n_actors = options.expert_actors;
  if (n_actors == 0)
    n_actors = options.device >= 0
                 ? 1 // one actor owns the GPU and runs all experts of a layer
                 : std::max<size_t>(1, std::thread::hardware_concurrency());
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
    auto host = spawn_expert_host(sys, *weights, options.device,
                                  options.quantization, options.engine.metrics,
                                  options.device_origin);
    if (!host)
      return std::move(host.error());
    hosts.push_back(expert_host{*host, ids, "local", 0, 0});
  }
  auto gate = sys.spawn(gating, *dense);
  return sys.spawn(engine, *dense, gate, std::move(hosts), options.engine);
}

} // namespace volt
