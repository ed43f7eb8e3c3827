#pragma once

#include <memory>
#include <string>
#include <vector>

#include "actors/type_ids.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"
#include "model/expert_miss_mode.hpp"
#include "model/mixtral.hpp"
#include "model/quantize.hpp"

namespace volt {

class node_metrics;
class expert_slot_cache;

/// Where a node's expert device is named, for errors about it.
constexpr const char* worker_device_key = "[worker] device =";

/// How a CUDA expert actor runs its experts.
struct cuda_expert_options {
  /// The CUDA device index.
  int device = 0;
  weight_quantization quantization = weight_quantization::none;
  /// Experts (of all layers together) kept on the device ([worker]
  /// gpu_expert_slots); the others wait in pinned host memory and are copied
  /// in as batches need them (and as the router's hints expect). 0, or at
  /// least every hosted expert: all resident. Fewer than one layer's hosted
  /// experts is an error.
  int64_t slots = 0;
  /// Where a miss runs ([worker] expert_misses).
  expert_miss_mode misses = expert_miss_mode::automatic;
  /// Show load progress (bytes, GB/s, ETA) on stderr, rewriting one line.
  bool show_progress = false;
  /// The node's metrics, for the cache's counts (may be null).
  std::shared_ptr<node_metrics> metrics;
  /// Where the device and the slots were named, for errors about them.
  std::string origin = worker_device_key;
  std::string slots_origin = "[worker] gpu_expert_slots =";
};

/// The expert cache `options` ask for over `hosted` (null where the slots
/// hold every hosted expert). Errors, naming options.slots_origin, where
/// they hold fewer than one layer's hosted experts.
caf::expected<std::unique_ptr<expert_slot_cache>>
expert_cache_for(const hosted_experts& hosted,
                 const cuda_expert_options& options);

/// Spawns an expert actor whose experts `ids` of `ckpt` run on a CUDA
/// device: the same `expert_actor` interface as the CPU `expert`, the same
/// batch checks. The actor is detached (its own thread), so waiting for the
/// GPU never blocks CAF's scheduler; it owns its CUDA streams, cuBLAS handle
/// and device buffers. Every hosted expert of every layer goes from the
/// files to the device (or, with an expert cache, to pinned host memory)
/// as bf16 or (quantization int8) per-channel int8 with fp32 scales,
/// converted and quantised by the device: the host keeps no float32 copy.
/// Errors: no CUDA in this build, no such device, experts or tensors the
/// checkpoint lacks, shapes the kernels do not support, too few slots, or
/// out of memory; each begins with the key, folder or file at fault.
caf::expected<expert_actor>
spawn_cuda_expert(caf::actor_system& sys, const checkpoint& ckpt,
                  const std::vector<uint32_t>& ids,
                  const cuda_expert_options& options);

} // namespace volt
