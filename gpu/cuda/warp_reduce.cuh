#pragma once

// Warp-wide reductions shared by the kernels (device code only: include from
// .cu files). Every lane of the full warp must take part.

#include <cuda_runtime.h>

namespace volt::cuda {

/// The sum of `v` over the warp, in every lane.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

/// The largest `best` over the warp and its `best_id`, in every lane; among
/// equal values the lower id wins (the CPU twins' tie rule).
__device__ __forceinline__ void warp_argmax(float& best, int& best_id) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    float other = __shfl_xor_sync(0xffffffffu, best, off);
    int other_id = __shfl_xor_sync(0xffffffffu, best_id, off);
    if (other > best || (other == best && other_id < best_id)) {
      best = other;
      best_id = other_id;
    }
  }
}

} // namespace volt::cuda
