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

/// One round of the warp's top-k: the largest of the values `v` (lane l
/// holds experts l, l + 32, ...; -1 for taken or absent ones), lower id first
/// among equals, in every lane; its owner marks it taken. Returns a negative
/// value when nothing is left.
template <int PerLane>
__device__ __forceinline__ float take_best(float (&v)[PerLane], int lane,
                                          int& best_id) {
  // Local best: the first (lowest id) of the lane's largest values.
  float best = -2.0f;
  best_id = 0x7fffffff;
#pragma unroll
  for (int i = 0; i < PerLane; ++i)
    if (v[i] > best) {
      best = v[i];
      best_id = lane + 32 * i;
    }
  warp_argmax(best, best_id);
#pragma unroll
  for (int i = 0; i < PerLane; ++i)
    if (lane + 32 * i == best_id)
      v[i] = -1.0f;
  return best;
}

/// This kernel does the following for token `warp`:
/// 1. loads the row into registers (PerLane values per lane, -inf padding);
/// 2. softmax: warp max, exp(x - max), warp sum, divide (the CPU twin's order);
/// 3. k rounds of warp argmax (larger value, then lower id, wins), each
///    winner removed;
/// 4. with `available`: keeps the available ones of the k in order; when
///    none is left, k more rounds over the available experts only;
/// 5. renormalises the kept probabilities by their sum (in slot order) and
///    writes them, lane j slot j; slots past the kept ones get the first
///    kept expert with weight 0.
template <int PerLane>
__global__ void topk_gating_kernel(const float* __restrict__ logits,
                                   int64_t n_tokens, int n_experts, int k,
                                   int32_t* __restrict__ topk_ids,
                                   float* __restrict__ topk_weights,
                                   const uint8_t* __restrict__ available,
                                   uint8_t* __restrict__ degraded) {
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
  // Every lane ends up with the whole choice (warp_argmax broadcasts), so
  // each picks its own slot below without dynamic register indexing.
  float chosen_p[8];
  int chosen_id[8];
  for (int j = 0; j < k; ++j) {
    int best_id;
    float best = take_best<PerLane>(v, lane, best_id);
#pragma unroll
    for (int jj = 0; jj < 8; ++jj)
      if (jj == j) {
        chosen_p[jj] = best;
        chosen_id[jj] = best_id;
      }
  }
  // Slot `lane`'s expert among the kept ones, their sum in slot order, and
  // the first kept expert (the filler of leftover slots).
  float kept = 0;
  int seen = 0;
  int out_id = -1;
  float out_p = 0;
  int first_id = -1;
#pragma unroll
  for (int j = 0; j < 8; ++j)
    if (j < k
        && (available == nullptr || available[chosen_id[j]] != 0)) {
      if (first_id < 0)
        first_id = chosen_id[j];
      kept += chosen_p[j];
      if (seen == lane) {
        out_id = chosen_id[j];
        out_p = chosen_p[j];
      }
      ++seen;
    }
  const bool lost = seen < k;
  if (seen == 0) {
    // Every chosen expert is unavailable: the best available ones instead.
#pragma unroll
    for (int i = 0; i < PerLane; ++i) {
      int e = lane + 32 * i;
      if (e < n_experts && available[e] == 0)
        v[i] = -1.0f;
    }
    for (int j = 0; j < k; ++j) {
      int best_id;
      float best = take_best<PerLane>(v, lane, best_id);
      if (best < 0)
        break; // no available expert left
      if (first_id < 0)
        first_id = best_id;
      kept += best;
      if (seen == lane) {
        out_id = best_id;
        out_p = best;
      }
      ++seen;
    }
  }
  if (seen == 0) {
    // Nothing available (callers check): route as without a mask.
#pragma unroll
    for (int j = 0; j < 8; ++j)
      if (j < k) {
        kept += chosen_p[j];
        if (j == lane) {
          out_id = chosen_id[j];
          out_p = chosen_p[j];
        }
      }
    seen = k;
  }
  if (lane < k) {
    bool filler = lane >= seen;
    topk_ids[token * k + lane] = filler ? first_id : out_id;
    topk_weights[token * k + lane] = filler ? 0.0f : out_p / kept;
  }
  if (lost && lane == 0 && degraded != nullptr)
    degraded[token] = 1;
}

/// Buffers of one gating launch.
struct gating_io {
  const float* logits;
  int32_t* topk_ids;
  float* topk_weights;
  const uint8_t* available;
  uint8_t* degraded;
};

template <int PerLane>
void launch_topk_gating(const gating_io& io, int64_t n_tokens, int n_experts,
                        int k, cudaStream_t stream) {
  auto blocks = (n_tokens + warps_per_block - 1) / warps_per_block;
  topk_gating_kernel<PerLane>
    <<<static_cast<unsigned>(blocks), warps_per_block * 32, 0, stream>>>(
      io.logits, n_tokens, n_experts, k, io.topk_ids, io.topk_weights,
      io.available, io.degraded);
  CUDA_CHECK_LAUNCH(topk_gating_kernel);
}

} // namespace

void topk_gating(const float* logits, int64_t n_tokens, int64_t n_experts,
                 int64_t k, int32_t* topk_ids, float* topk_weights,
                 cudaStream_t stream, const uint8_t* available,
                 uint8_t* degraded) {
  if (n_experts < 1 || n_experts > max_gating_experts || k < 1
      || k > max_gating_k || k > n_experts)
    throw cuda_error("topk_gating: unsupported n_experts "
                     + std::to_string(n_experts) + " / k "
                     + std::to_string(k));
  if (n_tokens == 0)
    return;
  auto e = static_cast<int>(n_experts);
  auto kk = static_cast<int>(k);
  gating_io io{logits, topk_ids, topk_weights, available, degraded};
  if (n_experts <= 32)
    launch_topk_gating<1>(io, n_tokens, e, kk, stream);
  else if (n_experts <= 64)
    launch_topk_gating<2>(io, n_tokens, e, kk, stream);
  else if (n_experts <= 128)
    launch_topk_gating<4>(io, n_tokens, e, kk, stream);
  else
    launch_topk_gating<8>(io, n_tokens, e, kk, stream);
}

} // namespace volt::cuda
