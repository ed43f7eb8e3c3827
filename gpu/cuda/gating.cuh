#pragma once

// Fused Mixtral router on the GPU: softmax over all experts, top-k, weights
// renormalised over the k chosen, in one pass over the logits. Twin of
// volt::cpu::topk_gating (gpu/cpu/cpu_ops.hpp).

#include <cstdint>

#include <cuda_runtime_api.h>

namespace volt::cuda {

/// Largest expert count and k the gating kernel supports.
constexpr int64_t max_gating_experts = 256;
constexpr int64_t max_gating_k = 8;

/// Softmax → top-k → renormalise, one warp per token. Ties keep the lower
/// expert id first. Requires 1 <= k <= min(n_experts, 8), n_experts <= 256.
/// With `available`, unavailable experts are dropped after the choice as
/// volt::cpu::topk_gating does (degraded routing: the token's available
/// ones of its k renormalised, or the top k of the available experts when
/// none is left; leftover slots hold the first kept expert with weight 0).
/// - logits       (in):  [n_tokens, n_experts] f32, device
/// - topk_ids     (out): [n_tokens, k] i32, device, by descending weight
/// - topk_weights (out): [n_tokens, k] f32, device
/// - available    (in):  [n_experts] u8, device, non-zero: may be chosen; at
///                       least one non-zero; null: every expert
/// - degraded     (out): [n_tokens] u8, device: set to 1 for a token that
///                       lost an expert, untouched otherwise; may be null
void topk_gating(const float* logits, int64_t n_tokens, int64_t n_experts,
                 int64_t k, int32_t* topk_ids, float* topk_weights,
                 cudaStream_t stream, const uint8_t* available = nullptr,
                 uint8_t* degraded = nullptr);

} // namespace volt::cuda
