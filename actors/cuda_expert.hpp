#pragma once

#include <memory>
#include <string>

#include "actors/type_ids.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"
#include "model/mixtral.hpp"
#include "model/quantize.hpp"

namespace volt {

/// Where a node's expert device is named, for errors about it.
constexpr const char* worker_device_key = "[worker] device =";

/// Spawns an expert actor whose experts run on CUDA device `device`: the same
/// `expert_actor` interface as the CPU `expert`, the same batch checks. The
/// actor is detached (its own thread), so waiting for the GPU never blocks
/// CAF's scheduler; it owns its CUDA streams, cuBLAS handle and device
/// buffers. Every hosted expert of every layer is uploaded once here, as bf16
/// or (quantization int8) as per-channel int8 with fp32 scales, quantised on
/// the host from the loaded weights. Errors: no CUDA in this build, no such
/// device, shapes the kernels do not support, or out of device memory; each
/// begins with `origin`, where the device was named (a config key or a flag).
caf::expected<expert_actor>
spawn_cuda_expert(caf::actor_system& sys,
                  std::shared_ptr<const expert_weights> weights, int device,
                  weight_quantization quantization,
                  const std::string& origin = worker_device_key);

} // namespace volt
