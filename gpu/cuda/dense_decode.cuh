#pragma once

// The dense products of a decode step (attention q/k/v and o, the LM head)
// through the experts' decode kernel (decode_mma.cuh): a few token rows
// against a bf16 matrix streamed once from HBM, split along K where the
// matrix alone would not give every multiprocessor two blocks. cuBLAS's
// choice for one row read these matrices at 1.3-1.4x their bytes' time on an
// H100, the decode kernel the experts' at 1.05x (docs/PERFORMANCE.md); its
// first weights also start for L2 while the kernel ahead finishes
// (chained_launch.cuh). CPU twin: volt::cpu's matmul over the same bf16
// inputs (partials summed in order).

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace volt::cuda {

/// Whether dense_decode takes a product of n_rows rows and an [n_out, k]
/// matrix: up to decode_tuning::dense_decode_max_rows rows (0: never), n_out
/// a multiple of 16, k a multiple of 32.
bool dense_decode_takes(int64_t n_rows, int64_t n_out, int64_t k);

/// K splits for an [n_out, k] matrix: the fewest of 1, 2, 4, 8 that give two
/// blocks per multiprocessor of the current device, each split keeping at
/// least 8 warp steps of K.
int64_t dense_decode_splits(int64_t n_out, int64_t k);

/// Row-major partial products over `splits` equal K ranges:
/// y[s, r, :] = x[r, K_s] · w[:, K_s]ᵀ. Each row's product is the sum of its
/// partials in split order (splits = 1: y is the product).
/// - w (in):  [n_out, k] bf16
/// - x (in):  [n_rows, k] bf16
/// - y (out): [splits, n_rows, n_out] f32
/// Requires dense_decode_takes(n_rows, n_out, k) and k % (32 * splits) == 0.
void dense_decode(const __nv_bfloat16* w, int64_t n_out, int64_t k,
                  const __nv_bfloat16* x, int64_t n_rows, int64_t splits,
                  float* y, cudaStream_t stream);

} // namespace volt::cuda
