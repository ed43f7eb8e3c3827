#pragma once

#include <cstddef>
#include <string>

#include "actors/cuda_expert.hpp"
#include "actors/engine.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"
#include "model/checkpoint.hpp"
#include "model/quantize.hpp"

namespace volt {

/// How a standalone node lays out its actors.
struct standalone_options {
  engine_options engine;
  /// Expert actors to split the experts over (contiguous slices); 0 picks one
  /// per hardware thread, at most one per expert (one in all on a GPU). More
  /// actors let several experts compute in parallel.
  size_t expert_actors = 0;
  /// Where experts run: -1 for the CPU, N for CUDA device N.
  int device = -1;
  /// Weight format of GPU experts.
  weight_quantization quantization = weight_quantization::none;
  /// Where `device` was named, for errors about it (a config key or a flag).
  std::string device_origin = worker_device_key;
};

/// Spawns an actor hosting `weights` on `device` (-1: CPU; N: CUDA device N,
/// with `quantization`, errors naming `device_origin`), counting its work in
/// `metrics` (may be null).
caf::expected<expert_actor>
spawn_expert_host(caf::actor_system& sys,
                  std::shared_ptr<const expert_weights> weights, int device,
                  weight_quantization quantization,
                  std::shared_ptr<node_metrics> metrics,
                  const std::string& device_origin = worker_device_key);

/// Loads the model from `ckpt` and spawns every actor of a node in this
/// process: gating, expert actors hosting all experts, and the engine. Errors
/// name the file or tensor at fault.
caf::expected<engine_actor> spawn_standalone(caf::actor_system& sys,
                                             const checkpoint& ckpt,
                                             const standalone_options& options);

} // namespace volt
