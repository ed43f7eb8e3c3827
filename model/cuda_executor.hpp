#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "caf/expected.hpp"
#include "model/checkpoint.hpp"
#include "model/expert_miss_mode.hpp"
#include "model/executor.hpp"
#include "model/quantize.hpp"

namespace volt {

/// How to build a CUDA executor.
struct cuda_executor_options {
  /// CUDA device index.
  int device = 0;
  /// Where the device was named, for errors (a config key or a flag).
  std::string device_origin = "[model] device =";
  /// Format of the experts computed here.
  weight_quantization quantization = weight_quantization::none;
  /// Compute every expert here (standalone); false: none (a router, whose
  /// experts live on workers).
  bool local_experts = true;
  /// Tokens per KV page.
  int64_t page_size = 16;
  /// KV pages; 0 sizes the pool from kv_memory_mib, else from
  /// kv_memory_percent of the device memory left after the weights and the
  /// step's buffers.
  int64_t num_pages = 0;
  int64_t kv_memory_mib = 0;
  int64_t kv_memory_percent = 90;
  /// Rows of the largest step (the step's buffers are sized for it).
  int64_t max_step_rows = 2048;
  /// Decode steps of up to this many rows replay as CUDA graphs (one per
  /// batch size).
  int64_t max_graph_rows = 64;
  /// Sequences the engine runs at once ([engine] max_batch): without a size
  /// the pool holds at most twice their full context.
  int64_t max_sequences = 64;
  /// Prompt chunks attend on the tensor cores where the shape allows; false
  /// keeps every row on the SIMT kernel (for measuring one against the
  /// other).
  bool tensor_core_prefill = true;
  /// Precise activations ([model] activations = "float32"): every
  /// activation that enters a product (the projections' and experts'
  /// inputs, SwiGLU's output, K, V and the attention output) is carried as
  /// a bf16 pair (hi + lo, about 16 significant bits), each product runs
  /// over both halves, attention stays on the SIMT kernel and the experts
  /// on cuBLAS. The weights stay bf16 (or int8); the KV cache takes twice
  /// the memory and steps are slower. Needs the experts on this node and no
  /// expert cache.
  bool precise_activations = false;
  /// Print load progress (bytes, GB/s, ETA) on stderr.
  bool show_progress = false;
  /// Experts resident on the device at once (an expert cache over pinned
  /// host copies of all of them); 0: every expert resident. The key that
  /// set it, for errors.
  int64_t expert_slots = 0;
  std::string expert_slots_origin = "[worker] gpu_expert_slots =";
  /// With an expert cache and the predictor: copy the experts it expects
  /// into slots ahead of each layer, and weigh eviction by its chances.
  /// False: the cache loads on demand and evicts by the transitions it
  /// learns from the routing ([prefetch] stage_experts).
  bool stage_predicted = false;
  /// Where the cache's misses run: copied, or computed on the host from
  /// the pinned copy (bf16 experts; automatic: per layer, by the two costs
  /// timed at start).
  expert_miss_mode expert_misses = expert_miss_mode::automatic;
};

/// Loads `ckpt` onto a CUDA device and returns an executor that runs whole
/// steps there: embedding, RMSNorm, RoPE, paged attention over a bf16 KV
/// cache in device memory, bf16 projections (cuBLAS), fused gating, the
/// experts (bf16 or int8), combine, final norm, LM head and greedy argmax;
/// only token ids (and the logits a step asks for) come back. Weights go
/// from the file mapping to the device without a float32 host copy. Errors:
/// no CUDA in this build, no such device, shapes the kernels do not support,
/// or not enough device memory, each naming `options.device_origin`.
caf::expected<std::shared_ptr<model_executor>>
make_cuda_executor(const checkpoint& ckpt, const cuda_executor_options& options);

} // namespace volt
