#pragma once

// A Mixtral model's weights on one CUDA device, in the formats the CUDA
// executor computes with, loaded straight from the checkpoint's files: no
// float32 host copy of anything, conversions and int8 quantisation on the
// device.

#include <cstdint>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "caf/expected.hpp"
#include "gpu/cuda/device_buffer.hpp"
#include "gpu/cuda/expert_ffn.cuh"
#include "model/checkpoint.hpp"
#include "model/quantize.hpp"

namespace volt {

/// One decoder layer on the device (the dense pointers null when only
/// experts were loaded).
struct cuda_layer_weights {
  const float* input_norm = nullptr; // [hidden]
  /// q, k and v stacked: [(n_heads + 2 n_kv_heads) * head_dim, hidden].
  const __nv_bfloat16* qkv = nullptr;
  const __nv_bfloat16* o_proj = nullptr; // [hidden, n_heads * head_dim]
  const float* post_norm = nullptr; // [hidden]
  const float* gate = nullptr; // [n_experts, hidden], the router in f32
  /// The layer's experts; weights null when they live on other nodes.
  cuda::expert_layer experts;
};

/// Every weight of a model on one device, in one allocation.
struct cuda_model_weights {
  cuda::device_buffer arena;
  const __nv_bfloat16* embed = nullptr; // [vocab, hidden]
  std::vector<cuda_layer_weights> layers;
  const float* final_norm = nullptr; // [hidden]
  const __nv_bfloat16* lm_head = nullptr; // [vocab, hidden]
  /// The experts when loaded into host memory (cuda_load_options::
  /// host_experts): page-locked, so that copies to the device run at the
  /// bus's speed; the layers' expert pointers point here.
  cuda::pinned_buffer host_arena;
  /// Bytes of the checkpoint's tensors read, of the device copy, and of the
  /// host copy of the experts.
  size_t file_bytes = 0;
  size_t device_bytes = 0;
  size_t host_bytes = 0;
  double seconds = 0;
};

/// How to load.
struct cuda_load_options {
  /// Load the dense weights (embeddings, attention, norms, routers, LM
  /// head); a worker's expert host loads only its experts.
  bool dense = true;
  /// Load experts (standalone, worker) or none (a router's experts live on
  /// workers).
  bool experts = true;
  /// Which experts of every layer, ascending; empty: every expert. The
  /// layers' expert_layer holds them in this order.
  std::vector<uint32_t> expert_ids;
  /// Keep the experts in pinned host memory instead (an expert cache copies
  /// them to the device as steps need them); converted and quantised by the
  /// device all the same, which writes them there through the bus.
  bool host_experts = false;
  weight_quantization quantization = weight_quantization::none;
  /// Print progress (bytes, GB/s, ETA) on stderr, rewriting one line.
  bool show_progress = false;
  /// For errors: "[model] device = cuda:0".
  std::string where;
};

/// Checks that `ckpt` holds every tensor `options` ask for, then reads them
/// from its files through pinned staging buffers (several reader threads,
/// copies to the device overlapping the reads) into one device allocation
/// on the current device, converting on the device. Errors name the device
/// and what did not fit, or the folder, file or tensor at fault.
caf::expected<cuda_model_weights>
load_cuda_weights(const checkpoint& ckpt, const cuda_load_options& options,
                  cudaStream_t stream);

} // namespace volt
