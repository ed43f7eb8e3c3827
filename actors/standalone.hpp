#pragma once

#include <memory>
#include <string>

#include "actors/cuda_expert.hpp"
#include "actors/engine.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"
#include "model/checkpoint.hpp"

namespace volt {

/// Experts computed inside the node's executor (no CUDA expert actor).
inline cuda_expert_options experts_in_executor() {
  cuda_expert_options o;
  o.device = -1;
  return o;
}

/// How a standalone (or router) node places its model.
struct standalone_options {
  engine_options engine;
  /// Where the model's step runs: -1 for the CPU executor, N for the CUDA
  /// executor on device N (experts included).
  int model_device = -1;
  /// Where it was named, for errors about it (a config key or a flag).
  std::string model_device_origin = "[model] device =";
  /// The experts: their weight format on a GPU, their expert cache (slots,
  /// where misses run) and, with the CPU executor, where they run
  /// (experts.device -1: inside the executor; N: in a CUDA expert actor on
  /// device N). The CUDA executor computes them itself, with this cache.
  cuda_expert_options experts = experts_in_executor();
  /// KV pool of a CUDA executor when engine.num_pages is 0: MiB, else this
  /// percent of the device memory left after the weights.
  int64_t kv_memory_mib = 0;
  int64_t kv_memory_percent = 90;
  /// A CUDA executor's prompt chunks attend on the tensor cores (false: the
  /// SIMT kernel, for comparison).
  bool tensor_core_prefill = true;
  /// A CUDA executor's precise activations ([model] activations =
  /// "float32"; cuda_executor_options::precise_activations).
  bool precise_activations = false;
  /// Show load progress on stderr (a terminal).
  bool show_progress = false;
  /// With a cache and the predictor: stage the experts it expects
  /// ([prefetch] stage_experts).
  bool stage_predicted = false;
  /// What sized the KV pool, for the error when it does not fit in memory,
  /// e.g. "node.toml: [kv_cache] num_pages = 64"; empty: the model's context
  /// (config.json's max_position_embeddings) did.
  std::string kv_pool_origin = {};
};

/// Spawns an actor hosting the experts `ids` of `ckpt`: on the CPU (float32
/// weights in host memory) when `gpu.device` is negative, else a CUDA expert
/// actor with `gpu`'s options (weights on the device only); either counts
/// its work in `gpu.metrics` (may be null). Errors name the folder, tensor
/// or key at fault.
caf::expected<expert_actor>
spawn_expert_host(caf::actor_system& sys, const checkpoint& ckpt,
                  const std::vector<uint32_t>& ids,
                  const cuda_expert_options& gpu);

/// Builds the executor `options` ask for over `ckpt`, computing every expert
/// itself (`local_experts`) or none (a router's). Errors name the file,
/// tensor or device at fault.
caf::expected<std::shared_ptr<model_executor>>
make_executor(const checkpoint& ckpt, const standalone_options& options,
              bool local_experts);

/// Loads the model from `ckpt` and spawns a node's engine in this process
/// with every expert local (in the executor, or in a CUDA expert actor).
caf::expected<engine_actor> spawn_standalone(caf::actor_system& sys,
                                             const checkpoint& ckpt,
                                             const standalone_options& options);

} // namespace volt
