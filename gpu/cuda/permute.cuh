#pragma once

// Token permutation by expert (vLLM's vocabulary: dispatch → experts →
// combine). The CPU twin of the plan is volt::plan_dispatch (model/forward.hpp):
// rows grouped by expert, ascending expert id, tokens ascending within one.

#include <cstddef>
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace volt::cuda {

/// Scratch bytes `plan_dispatch` needs for n_tokens * k pairs and n_experts.
size_t plan_dispatch_workspace_bytes(int64_t n_pairs, int64_t n_experts);

/// Groups the (token, slot) pairs by expert with a stable radix sort (CUB):
/// counts per expert, their exclusive scan and the permutation both ways.
/// - topk_ids       (in):  [n_tokens, k] i32, each in [0, n_experts)
/// - workspace      (tmp): plan_dispatch_workspace_bytes(n_tokens * k, n_experts)
/// - sorted_pair    (out): [n_tokens * k] i32, pair index t * k + j of each
///                         grouped row
/// - expert_offsets (out): [n_experts + 1] i32, rows of expert e are
///                         [offsets[e], offsets[e + 1])
/// - pair_row       (out): [n_tokens * k] i32, grouped row of pair t * k + j
void plan_dispatch(const int32_t* topk_ids, int64_t n_tokens, int64_t k,
                   int64_t n_experts, void* workspace, size_t workspace_bytes,
                   int32_t* sorted_pair, int32_t* expert_offsets,
                   int32_t* pair_row, cudaStream_t stream);

/// Gathers token rows into grouped order, narrowed to bf16.
/// - x           (in):  [n_tokens, hidden] f32 or bf16
/// - sorted_pair (in):  [n_rows] i32, pair index t * k + j
/// - rows        (out): [n_rows, hidden] bf16, row r = x[sorted_pair[r] / k]
void gather_rows(const float* x, const int32_t* sorted_pair, int64_t n_rows,
                 int64_t k, int64_t hidden, __nv_bfloat16* rows,
                 cudaStream_t stream);
void gather_rows(const __nv_bfloat16* x, const int32_t* sorted_pair,
                 int64_t n_rows, int64_t k, int64_t hidden,
                 __nv_bfloat16* rows, cudaStream_t stream);
/// Same, narrowed to f16 (the int8 decode path's activations).
void gather_rows(const __nv_bfloat16* x, const int32_t* sorted_pair,
                 int64_t n_rows, int64_t k, int64_t hidden, __half* rows,
                 cudaStream_t stream);

/// Weighted sum of the expert outputs back into token order:
/// out[t] (+)= Σ_j topk_weights[t, j] · Σ_s y[s, pair_row[t * k + j]], j in
/// order, so the result does not depend on the grouping (no atomics); with
/// `accumulate` the sum is added to out (the residual), as the CPU twin
/// volt::combine does.
/// - y            (in):     [splits, n_tokens * k, hidden] f32 (split-K
///                          partials)
/// - pair_row     (in):     [n_tokens * k] i32
/// - topk_weights (in):     [n_tokens, k] f32
/// - out          (in/out): [n_tokens, hidden] f32
void combine(const float* y, int64_t splits, const int32_t* pair_row,
             const float* topk_weights, int64_t n_tokens, int64_t k,
             int64_t hidden, float* out, cudaStream_t stream,
             bool accumulate = false);

/// dst[i] = src[i] by a kernel, not a copy engine: `src` may be mapped
/// pinned host memory (cudaMallocHost; every pinned buffer is mapped under
/// unified addressing), read over the bus by the kernel. A few KiB this
/// way do not queue behind a large host-to-device copy that occupies the
/// copy engine (an expert cache's background copies). The host must not
/// rewrite `src` before the stream has run the kernel.
/// - src (in):  [n] 32-bit words, device or mapped host memory
/// - dst (out): [n] 32-bit words, device memory
void copy_words(const void* src, int64_t n, void* dst, cudaStream_t stream);

/// Sums split-K partials: out[r] = Σ_s y[s, r].
/// - y   (in):  [splits, n_rows, hidden] f32
/// - out (out): [n_rows, hidden] f32; may alias y when splits == 1
void sum_splits(const float* y, int64_t splits, int64_t n_rows, int64_t hidden,
                float* out, cudaStream_t stream);

/// Narrows f32 to bf16 (round to nearest even).
/// - x   (in):  [n] f32
/// - out (out): [n] bf16
void f32_to_bf16(const float* x, int64_t n, __nv_bfloat16* out,
                 cudaStream_t stream);

/// Narrows f32 to f16 (round to nearest even; beyond ±65504 gives ±inf).
/// - x   (in):  [n] f32
/// - out (out): [n] f16
void f32_to_f16(const float* x, int64_t n, __half* out, cudaStream_t stream);

} // namespace volt::cuda
