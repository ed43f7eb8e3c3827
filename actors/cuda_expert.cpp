#include "actors/cuda_expert.hpp"

#include "actors/unexpected_messages.hpp"
#include "base/error.hpp"
#include "model/expert_slot_cache.hpp"

namespace volt {

caf::expected<std::unique_ptr<expert_slot_cache>>
expert_cache_for(const hosted_experts& experts,
                 const cuda_expert_options& options) {
  // A cache only where the slots hold fewer than every hosted expert: a
  // router may spawn any number of experts on a worker.
  const auto& cfg = experts.config();
  const auto hosted = static_cast<int64_t>(experts.ids().size());
  if (options.slots <= 0 || options.slots >= hosted * cfg.num_hidden_layers)
    return std::unique_ptr<expert_slot_cache>{};
  auto made = expert_slot_cache::make(options.slots, cfg.num_hidden_layers,
                                      hosted, hosted, options.slots_origin);
  if (!made)
    return std::move(made.error());
  return std::make_unique<expert_slot_cache>(std::move(*made));
}

} // namespace volt

#ifdef VOLT_HAVE_CUDA

#  include "actors/cuda_expert_state.hpp"
#  include "actors/expert.hpp"
#  include "actors/expert_pool.hpp"
#  include "base/log.hpp"
#  include "model/cuda_weights.hpp"
#  include "caf/event_based_actor.hpp"
#  include "caf/typed_event_based_actor.hpp"

namespace volt {

namespace {

expert_actor::behavior_type cuda_expert(expert_actor::pointer self,
                                        std::shared_ptr<cuda_expert_state> st) {
  drop_unexpected_messages(self);
  return {
    [st](const expert_batch& batch) -> caf::result<wire_tensor> {
      if (auto err = check_expert_batch(st->hosted(), batch))
        return err;
      try {
        return st->run(batch);
      } catch (const std::exception& ex) {
        return make_volt_error(volt_errc::internal,
                               std::string{"cuda expert: "} + ex.what());
      }
    },
    [st](hosted_atom) { return hello_of(st->hosted()); },
  };
}

} // namespace

caf::expected<expert_actor>
spawn_cuda_expert(caf::actor_system& sys, const checkpoint& ckpt,
                  const std::vector<uint32_t>& ids,
                  const cuda_expert_options& options) {
  const int device = options.device;
  const auto where = options.origin + " cuda:" + std::to_string(device);
  auto fail = [&where](const std::string& why) {
    return make_volt_error(volt_errc::invalid_config, where + ": " + why);
  };
  // The checkpoint and the slots first: their errors do not depend on the
  // machine.
  auto hosted = hosted_experts::of(ckpt, ids);
  if (!hosted)
    return std::move(hosted.error());
  auto cache = expert_cache_for(*hosted, options);
  if (!cache)
    return std::move(cache.error());
  int count = 0;
  if (auto status = cudaGetDeviceCount(&count); status != cudaSuccess)
    return fail(std::string{"no usable CUDA device ("}
                + cudaGetErrorString(status) + ")");
  if (device < 0 || device >= count)
    return fail("no such device (" + std::to_string(count)
                + " CUDA devices found)");
  const auto& cfg = hosted->config();
  cuda::expert_layer shape;
  shape.hidden = cfg.hidden_size;
  shape.ffn = cfg.intermediate_size;
  if (auto why = cuda::expert_ffn_unsupported(shape))
    return fail(why);
  try {
    CUDA_CHECK(cudaSetDevice(device));
    cuda_load_options load;
    load.dense = false;
    load.expert_ids = hosted->ids();
    load.host_experts = *cache != nullptr;
    load.quantization = options.quantization;
    load.where = where;
    load.show_progress = options.show_progress;
    cuda::stream loading;
    auto weights = load_cuda_weights(ckpt, load, loading.get());
    if (!weights)
      return std::move(weights.error());
    VOLT_INFO("expert", "experts " << expert_pool::render(hosted->ids())
                                   << " on cuda:" << device << ": "
                                   << ((weights->device_bytes
                                        + weights->host_bytes)
                                       >> 20)
                                   << " MiB ("
                                   << (weights->host_bytes > 0
                                         ? "pinned host memory"
                                         : "device")
                                   << ") from " << (weights->file_bytes >> 20)
                                   << " MiB of files in " << weights->seconds
                                   << " s");
    auto st = std::make_shared<cuda_expert_state>(
      std::move(*hosted), std::move(*weights), options, std::move(*cache));
    return sys.spawn<caf::detached>(cuda_expert, std::move(st));
  } catch (const std::exception& ex) {
    return make_volt_error(volt_errc::internal,
                           std::string{"cuda expert: "} + ex.what());
  }
}

} // namespace volt

#else // VOLT_HAVE_CUDA

namespace volt {

caf::expected<expert_actor>
spawn_cuda_expert(caf::actor_system&, const checkpoint& ckpt,
                  const std::vector<uint32_t>& ids,
                  const cuda_expert_options& options) {
  auto hosted = hosted_experts::of(ckpt, ids);
  if (!hosted)
    return std::move(hosted.error());
  if (auto cache = expert_cache_for(*hosted, options); !cache)
    return std::move(cache.error());
  return make_volt_error(volt_errc::invalid_config,
                         "volt-node was built without CUDA; " + options.origin
                           + " cuda:" + std::to_string(options.device)
                           + " needs a CUDA build");
}

} // namespace volt

#endif // VOLT_HAVE_CUDA
