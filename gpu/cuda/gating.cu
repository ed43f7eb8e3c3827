// Fused top-k gating: one warp per token, the logits of a token held in
// registers (lane l holds experts l, l + 32, ...), so the row is read once and
// nothing but the k results is written.

#include "gpu/cuda/gating.cuh"

#include <cfloat>

#include "gpu/cuda/cuda_check.hpp"
#include "gpu/cuda/warp_reduce.cuh"

namespace volt::cuda {

namespace {

constexpr int warps_per_block = 8;

/// This kernel does the following for token `warp`:
/// 1. loads the row into registers (PerLane values per lane, -inf padding);
/// 2. softmax: warp max, exp(x - max), warp sum, divide (the CPU twin's order);
/// 3. k rounds of warp argmax (larger value, then lower id, wins), each
///    winner removed;
/// 4. renormalises the k probabilities by their sum and writes them.
template <int PerLane>
__global__ void topk_gating_kernel(const float* __restrict__ logits,
                                   int64_t n_tokens, int n_experts, int k,
                                   int32_t* __restrict__ topk_ids,
                                   float* __restrict__ topk_weights) {
  const int lane = threadIdx.x % 32;
  const int64_t token = static_cast<int64_t>(blockIdx.x) * warps_per_block
                        + threadIdx.x / 32;
  if (token >= n_tokens)
    return;
  const float* row = logits + token * n_experts;
  float v[PerLane];
  float max_v = -FLT_MAX;
#pragma unroll
  for (int i = 0; i < PerLane; ++i) {
    int e = lane + 32 * i;
    v[i] = e < n_experts ? row[e] : -FLT_MAX;
    max_v = fmaxf(max_v, v[i]);
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2)
    max_v = fmaxf(max_v, __shfl_xor_sync(0xffffffffu, max_v, off));
  float sum = 0;
#pragma unroll
  for (int i = 0; i < PerLane; ++i) {
    int e = lane + 32 * i;
    v[i] = e < n_experts ? expf(v[i] - max_v) : -1.0f; // -1: never chosen
    sum += e < n_experts ? v[i] : 0.0f;
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2)
    sum += __shfl_xor_sync(0xffffffffu, sum, off);
#pragma unroll
  for (int i = 0; i < PerLane; ++i)
    if (v[i] >= 0)
      v[i] /= sum;
  float chosen_p[8];
  int chosen_id[8];
  float kept = 0;
  for (int j = 0; j < k; ++j) {
    // Local best: the first (lowest id) of the lane's largest values.
    float best = -2.0f;
    int best_id = 0x7fffffff;
#pragma unroll
    for (int i = 0; i < PerLane; ++i)
      if (v[i] > best) {
        best = v[i];
        best_id = lane + 32 * i;
      }
    warp_argmax(best, best_id);
    // The owner removes the winner from later rounds.
#pragma unroll
    for (int i = 0; i < PerLane; ++i)
      if (lane + 32 * i == best_id)
        v[i] = -1.0f;
    kept += best;
#pragma unroll
    for (int jj = 0; jj < 8; ++jj)
      if (jj == j) {
        chosen_p[jj] = best;
        chosen_id[jj] = best_id;
      }
  }
#pragma unroll
  for (int j = 0; j < 8; ++j)
    if (j < k && lane == j) {
      topk_ids[token * k + j] = chosen_id[j];
      topk_weights[token * k + j] = chosen_p[j] / kept;
    }
}

template <int PerLane>
void launch_topk_gating(const float* logits, int64_t n_tokens, int n_experts,
                        int k, int32_t* topk_ids, float* topk_weights,
                        cudaStream_t stream) {
  auto blocks = (n_tokens + warps_per_block - 1) / warps_per_block;
  topk_gating_kernel<PerLane>
    <<<static_cast<unsigned>(blocks), warps_per_block * 32, 0, stream>>>(
      logits, n_tokens, n_experts, k, topk_ids, topk_weights);
  CUDA_CHECK_LAUNCH(topk_gating_kernel);
}

} // namespace

void topk_gating(const float* logits, int64_t n_tokens, int64_t n_experts,
                 int64_t k, int32_t* topk_ids, float* topk_weights,
                 cudaStream_t stream) {
  if (n_experts < 1 || n_experts > max_gating_experts || k < 1
      || k > max_gating_k || k > n_experts)
    throw cuda_error("topk_gating: unsupported n_experts "
                     + std::to_string(n_experts) + " / k "
                     + std::to_string(k));
  if (n_tokens == 0)
    return;
  auto e = static_cast<int>(n_experts);
  auto kk = static_cast<int>(k);
  if (n_experts <= 32)
    launch_topk_gating<1>(logits, n_tokens, e, kk, topk_ids, topk_weights,
                          stream);
  else if (n_experts <= 64)
    launch_topk_gating<2>(logits, n_tokens, e, kk, topk_ids, topk_weights,
                          stream);
  else if (n_experts <= 128)
    launch_topk_gating<4>(logits, n_tokens, e, kk, topk_ids, topk_weights,
                          stream);
  else
    launch_topk_gating<8>(logits, n_tokens, e, kk, topk_ids, topk_weights,
                          stream);
}

} // namespace volt::cuda
