#include "actors/standalone.hpp"

#include <new>
#include <numeric>

#include "actors/expert.hpp"
#include "base/error.hpp"
#include "model/cpu_executor.hpp"
#include "model/cuda_executor.hpp"
#include "model/kv_cache.hpp"
#include "model/page_table.hpp"

namespace volt {

namespace {

/// What sized the KV pool, for errors about it.
std::string pool_origin(const checkpoint& ckpt,
                        const standalone_options& options) {
  if (!options.kv_pool_origin.empty())
    return options.kv_pool_origin;
  return ckpt.dir() + "/config.json: max_position_embeddings = "
         + std::to_string(ckpt.config().max_position_embeddings)
         + " (without [kv_cache] num_pages or memory_mib the pool holds one "
           "sequence of the model's whole context; set one of them)";
}

std::vector<uint32_t> every_expert(const model_config& cfg) {
  std::vector<uint32_t> ids(static_cast<size_t>(cfg.num_local_experts));
  std::iota(ids.begin(), ids.end(), 0u);
  return ids;
}

} // namespace

caf::expected<expert_actor>
spawn_expert_host(caf::actor_system& sys, const checkpoint& ckpt,
                  const std::vector<uint32_t>& ids,
                  const cuda_expert_options& gpu) {
  if (gpu.device >= 0)
    return spawn_cuda_expert(sys, ckpt, ids, gpu);
  auto weights = expert_weights::load(ckpt, ids);
  if (!weights)
    return std::move(weights.error());
  return sys.spawn(metered_expert, std::move(*weights), gpu.metrics);
}

caf::expected<std::shared_ptr<model_executor>>
make_executor(const checkpoint& ckpt, const standalone_options& options,
              bool local_experts) {
  const auto& eng = options.engine;
  if (options.model_device >= 0) {
    cuda_executor_options opts;
    opts.device = options.model_device;
    opts.device_origin = options.model_device_origin;
    opts.quantization = options.experts.quantization;
    opts.local_experts = local_experts;
    opts.page_size = eng.page_size;
    opts.num_pages = eng.num_pages;
    opts.kv_memory_mib = options.kv_memory_mib;
    opts.kv_memory_percent = options.kv_memory_percent;
    opts.max_step_rows = std::max<int64_t>(
      eng.batching.prefill_chunk + static_cast<int64_t>(eng.batching.max_batch),
      1);
    opts.max_graph_rows = static_cast<int64_t>(eng.batching.max_batch);
    opts.max_sequences = static_cast<int64_t>(eng.batching.max_batch);
    opts.show_progress = options.show_progress;
    opts.tensor_core_prefill = options.tensor_core_prefill;
    opts.precise_activations = options.precise_activations;
    opts.expert_slots = options.experts.slots;
    opts.expert_slots_origin = options.experts.slots_origin;
    opts.stage_predicted = options.stage_predicted;
    opts.expert_misses = options.experts.misses;
    auto exec = make_cuda_executor(ckpt, opts);
    // The pages live on the device; their records in the page table do not.
    if (exec)
      if (auto err = check_pool_fits_host(
            (*exec)->num_pages(), page_table::bytes_per_page(),
            pool_origin(ckpt, options)))
        return err;
    return exec;
  }
  // Without a size: one sequence of the model's full context.
  const auto& cfg = ckpt.config();
  auto pages = eng.num_pages > 0 ? eng.num_pages
                                 : (cfg.max_position_embeddings
                                    + eng.page_size - 1)
                                     / eng.page_size;
  if (auto err = check_pool_fits_host(
        pages, kv_bytes_per_page(cfg, eng.page_size)
                 + page_table::bytes_per_page(),
        pool_origin(ckpt, options)))
    return err;
  auto dense = dense_weights::load(ckpt);
  if (!dense)
    return std::move(dense.error());
  std::shared_ptr<const expert_weights> experts;
  if (local_experts) {
    auto loaded = expert_weights::load(ckpt, every_expert(ckpt.config()));
    if (!loaded)
      return std::move(loaded.error());
    experts = std::move(*loaded);
  }
  try {
    return std::shared_ptr<model_executor>{std::make_shared<cpu_executor>(
      std::move(*dense), std::move(experts), eng.page_size, pages)};
  } catch (const std::bad_alloc&) {
    // Memory taken by others since the check above.
    return make_volt_error(volt_errc::invalid_config,
                           pool_origin(ckpt, options) + ": cannot allocate "
                             + "the KV pool of " + std::to_string(pages)
                             + " pages");
  }
}

caf::expected<engine_actor>
spawn_standalone(caf::actor_system& sys, const checkpoint& ckpt,
                 const standalone_options& options) {
  // Experts on a GPU beside a CPU executor live in a CUDA expert actor, as
  // on a worker.
  bool expert_actor = options.model_device < 0 && options.experts.device >= 0;
  auto exec = make_executor(ckpt, options, !expert_actor);
  if (!exec)
    return std::move(exec.error());
  std::vector<expert_host> hosts;
  if (expert_actor) {
    auto ids = every_expert(ckpt.config());
    auto gpu = options.experts;
    gpu.metrics = options.engine.metrics;
    auto host = spawn_expert_host(sys, ckpt, ids, gpu);
    if (!host)
      return std::move(host.error());
    hosts.push_back(expert_host{*host, ids, "local", 0, 0});
  }
  return spawn_engine(sys, std::move(*exec), std::move(hosts), options.engine);
}

} // namespace volt
