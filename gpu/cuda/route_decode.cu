// One block routes a decode batch: see route_decode.cuh for why.

#include "gpu/cuda/route_decode.cuh"

#include <cfloat>

#include "gpu/cuda/chained_launch.cuh"
#include "gpu/cuda/cuda_check.hpp"
#include "gpu/cuda/warp_reduce.cuh"

namespace volt::cuda {

namespace {

constexpr int route_threads = 128;
constexpr int route_warps = route_threads / 32;
constexpr int max_tokens = static_cast<int>(route_decode_max_tokens);
constexpr int max_experts = 32;
constexpr int max_k = 8;
/// Floats of a gate row one block takes: one float4 per thread, so that
/// every load of the router product is in flight at once.
constexpr int span = route_threads * 4;

struct route_args {
  const float* x_router;
  const float* gate;
  const __nv_bfloat16* x;
  int n, hidden, n_experts, k, parts;
  float* partial;          // [parts, n, n_experts]
  unsigned int* finished;  // blocks done; the last resets it
  int32_t* topk_ids;
  float* topk_weights;
  int32_t* sorted_pair;
  int32_t* offsets;
  int32_t* pair_row;
  void* rows;
  const uint8_t* available; // [n_experts] or null
  uint8_t* degraded;        // [n] or null
};

/// Steps 2-4 of route_decode_kernel, run by the block that finishes last.
template <bool F16>
__device__ void gate_plan_gather(const route_args& a) {
  __shared__ int32_t ids[max_tokens * max_k];
  __shared__ int32_t start[max_experts + 1];
  __shared__ int32_t grouped[max_tokens * max_k];
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  for (int t = warp; t < a.n; t += route_warps) {
    float v = -FLT_MAX;
    if (lane < a.n_experts) {
      // Written by other blocks: read through L2, not a stale L1 line.
      v = __ldcg(a.partial + t * a.n_experts + lane);
      for (int part = 1; part < a.parts; ++part)
        v += __ldcg(a.partial + (part * a.n + t) * a.n_experts + lane);
    }
    float m = v;
#pragma unroll
    for (int off = 16; off > 0; off /= 2)
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    float p = lane < a.n_experts ? expf(v - m) : 0.0f;
    float sum = warp_sum(p);
    p = lane < a.n_experts ? p / sum : -1.0f; // -1: never chosen
    // Lane j holds slot j's choice.
    float chosen = 0;
    int chosen_id = -1;
    for (int j = 0; j < a.k; ++j) {
      float best = p;
      int best_id = lane;
      warp_argmax(best, best_id);
      if (lane == best_id)
        p = -1.0f;
      if (lane == j) {
        chosen = best;
        chosen_id = best_id;
      }
    }
    const unsigned all_slots = (1u << a.k) - 1;
    // Slots whose expert may be chosen (degraded routing drops the others).
    unsigned kept_slots = __ballot_sync(
      0xffffffffu, lane < a.k
                     && (a.available == nullptr || a.available[chosen_id]));
    const bool lost = kept_slots != all_slots;
    if (kept_slots == 0) {
      // Every chosen expert is unavailable: the best available ones instead.
      if (lane < a.n_experts && a.available[lane] == 0)
        p = -1.0f;
      for (int j = 0; j < a.k; ++j) {
        float best = p;
        int best_id = lane;
        warp_argmax(best, best_id);
        if (best < 0)
          break; // no available expert left
        if (lane == best_id)
          p = -1.0f;
        if (lane == j) {
          chosen = best;
          chosen_id = best_id;
        }
        kept_slots |= 1u << j;
      }
    }
    if (kept_slots == 0) // nothing available (callers check): no mask
      kept_slots = all_slots;
    // Renormalise over the kept slots in slot order (topk_gating's order);
    // kept ones move to the front, the first kept fills the rest, weight 0.
    float kept = 0;
    for (int j = 0; j < a.k; ++j) {
      float pj = __shfl_sync(0xffffffffu, chosen, j);
      if ((kept_slots >> j) & 1u)
        kept += pj;
    }
    const int first_id
      = __shfl_sync(0xffffffffu, chosen_id, __ffs(kept_slots) - 1);
    const int n_kept = __popc(kept_slots);
    if (lane < a.k && ((kept_slots >> lane) & 1u)) {
      int slot = t * a.k + __popc(kept_slots & ((1u << lane) - 1));
      ids[slot] = chosen_id;
      a.topk_ids[slot] = chosen_id;
      a.topk_weights[slot] = chosen / kept;
    }
    if (lane >= n_kept && lane < a.k) {
      ids[t * a.k + lane] = first_id;
      a.topk_ids[t * a.k + lane] = first_id;
      a.topk_weights[t * a.k + lane] = 0.0f;
    }
    if (lost && lane == 0 && a.degraded != nullptr)
      a.degraded[t] = 1;
  }
  __syncthreads();
  const int pairs = a.n * a.k;
  if (threadIdx.x == 0) {
    for (int e = 0; e <= a.n_experts; ++e)
      start[e] = 0;
    for (int i = 0; i < pairs; ++i)
      ++start[ids[i]];
    int sum = 0;
    for (int e = 0; e <= a.n_experts; ++e) {
      int c = start[e];
      start[e] = sum;
      a.offsets[e] = sum;
      sum += c;
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < pairs; i += route_threads) {
    int e = ids[i];
    int rank = 0;
    for (int j = 0; j < i; ++j)
      rank += ids[j] == e;
    int row = start[e] + rank;
    a.sorted_pair[row] = i;
    a.pair_row[i] = row;
    grouped[row] = i;
  }
  if (a.rows == nullptr)
    return;
  __syncthreads();
  const int slices = a.hidden / 8;
  for (int idx = threadIdx.x; idx < pairs * slices; idx += route_threads) {
    const int r = idx / slices;
    const int c = (idx % slices) * 8;
    const int token = grouped[r] / a.k;
    const uint4 src = *reinterpret_cast<const uint4*>(
      a.x + static_cast<int64_t>(token) * a.hidden + c);
    const int64_t at = static_cast<int64_t>(r) * a.hidden + c;
    if constexpr (F16) {
      const auto* b = reinterpret_cast<const __nv_bfloat16*>(&src);
      __align__(16) __half h[8];
#pragma unroll
      for (int i = 0; i < 8; ++i)
        h[i] = __float2half_rn(__bfloat162float(b[i]));
      *reinterpret_cast<uint4*>(static_cast<__half*>(a.rows) + at)
        = *reinterpret_cast<const uint4*>(h);
    } else {
      *reinterpret_cast<uint4*>(static_cast<__nv_bfloat16*>(a.rows) + at)
        = src;
    }
  }
}

/// This kernel does the following; block (e, part) of n_experts x parts:
/// 1. router logits: each thread multiplies one float4 of expert e's gate
///    row (within the block's part of hidden) by every token's row, the
///    block sums its threads (warps, then the warps in order) and writes
///    its partial logits (f32 throughout, no TF32);
/// 2. the block that finishes last (a counter after a memory fence) adds
///    the parts in order, and per token: softmax over the experts, k rounds
///    of argmax (larger, then lower id, wins), unavailable experts dropped
///    (or, when all k are, k rounds over the available ones), weights
///    renormalised over the kept (topk_gating's order of operations);
/// 3. plan: its thread 0 counts and scans the experts' pairs, then each
///    pair's row is its expert's offset plus the earlier pairs of that
///    expert;
/// 4. gather: its threads copy 8-element slices of the grouped rows.
template <bool F16>
__global__ void __launch_bounds__(route_threads)
  route_decode_kernel(const route_args a) {
  __shared__ float warp_part[route_warps][max_tokens];
  __shared__ bool last;
  chain_start();
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int e = blockIdx.x / a.parts;
  const int part = blockIdx.x % a.parts;
  const int c = part * span + threadIdx.x * 4;
  float acc[max_tokens];
#pragma unroll
  for (int t = 0; t < max_tokens; ++t)
    acc[t] = 0.0f;
  if (c < a.hidden) {
    const float4 g = *reinterpret_cast<const float4*>(
      a.gate + static_cast<int64_t>(e) * a.hidden + c);
#pragma unroll
    for (int t = 0; t < max_tokens; ++t)
      if (t < a.n) {
        const float4 x = *reinterpret_cast<const float4*>(
          a.x_router + static_cast<int64_t>(t) * a.hidden + c);
        acc[t] = g.x * x.x + g.y * x.y + g.z * x.z + g.w * x.w;
      }
  }
#pragma unroll
  for (int t = 0; t < max_tokens; ++t)
    if (t < a.n) {
      float s = warp_sum(acc[t]);
      if (lane == 0)
        warp_part[warp][t] = s;
    }
  __syncthreads();
  if (threadIdx.x < a.n) {
    float s = 0;
    for (int w = 0; w < route_warps; ++w)
      s += warp_part[w][threadIdx.x];
    a.partial[(part * a.n + threadIdx.x) * a.n_experts + e] = s;
  }
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0)
    last = atomicAdd(a.finished, 1u) == gridDim.x - 1;
  __syncthreads();
  if (!last)
    return;
  __threadfence();
  gate_plan_gather<F16>(a);
  if (threadIdx.x == 0)
    *a.finished = 0; // ready for the next launch (and graph replay)
}

int parts_for(int64_t hidden) {
  return static_cast<int>((hidden + span - 1) / span);
}

/// Workspace: [partial logits (parts, max tokens, experts) f32 | counter].
size_t counter_offset(int64_t n_experts, int64_t hidden) {
  auto bytes = sizeof(float) * parts_for(hidden) * route_decode_max_tokens
               * n_experts;
  return (bytes + 255) / 256 * 256;
}

} // namespace

size_t route_decode_workspace_bytes(int64_t n_experts, int64_t hidden) {
  return counter_offset(n_experts, hidden) + sizeof(unsigned int);
}

bool route_decode_supported(int64_t n_tokens, int64_t n_experts, int64_t k,
                            int64_t hidden) {
  return n_tokens >= 1 && n_tokens <= route_decode_max_tokens && k >= 1
         && k <= max_k && n_experts >= k && n_experts <= max_experts
         && hidden > 0 && hidden % 8 == 0;
}

void route_decode(const float* x_router, const float* gate,
                  const __nv_bfloat16* x, int64_t n_tokens, int64_t hidden,
                  int64_t n_experts, int64_t k, int32_t* topk_ids,
                  float* topk_weights, int32_t* sorted_pair,
                  int32_t* expert_offsets, int32_t* pair_row, void* rows,
                  bool rows_f16, void* workspace, cudaStream_t stream,
                  const uint8_t* available, uint8_t* degraded) {
  if (!route_decode_supported(n_tokens, n_experts, k, hidden))
    throw cuda_error("route_decode: unsupported shape (tokens "
                     + std::to_string(n_tokens) + ", experts "
                     + std::to_string(n_experts) + ", k " + std::to_string(k)
                     + ", hidden " + std::to_string(hidden) + ")");
  if (rows != nullptr && x == nullptr)
    throw cuda_error("route_decode: rows to gather without their input x");
  route_args a{x_router,
               gate,
               x,
               static_cast<int>(n_tokens),
               static_cast<int>(hidden),
               static_cast<int>(n_experts),
               static_cast<int>(k),
               parts_for(hidden),
               static_cast<float*>(workspace),
               reinterpret_cast<unsigned int*>(
                 static_cast<char*>(workspace) + counter_offset(n_experts, hidden)),
               topk_ids,
               topk_weights,
               sorted_pair,
               expert_offsets,
               pair_row,
               rows,
               available,
               degraded};
  const auto blocks = static_cast<unsigned>(n_experts * a.parts);
  if (rows_f16)
    launch_chained(route_decode_kernel<true>, blocks, route_threads, 0, stream,
                   a);
  else
    launch_chained(route_decode_kernel<false>, blocks, route_threads, 0,
                   stream, a);
}

} // namespace volt::cuda
