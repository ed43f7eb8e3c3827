#pragma once

// The router of a few decode tokens in one launch: router product (f32),
// softmax top-k gating, dispatch plan and the gather of the experts' input
// rows. At batch 1-8 each of these is a few microseconds of work behind a
// launch of its own (cuBLAS, gating, plan, gather). One block per (expert,
// 512 floats of hidden) computes a partial router product, so that the gate
// matrix streams through many multiprocessors; the block that finishes last
// does the rest.
// Its CPU twin is the chain it replaces: volt::cpu router product,
// cpu::topk_gating, volt::plan_dispatch and a gather (the same results as
// router product → topk_gating → plan_dispatch → gather_rows here).

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace volt::cuda {

/// Largest batch route_decode takes.
constexpr int64_t route_decode_max_tokens = 8;

/// Whether route_decode handles this shape: n_tokens in [1, 8], n_experts
/// in [k, 32], k <= 8, hidden a multiple of 8 (16-byte loads of the inputs).
bool route_decode_supported(int64_t n_tokens, int64_t n_experts, int64_t k,
                            int64_t hidden);

/// Bytes of route_decode's workspace for this many experts and hidden size.
size_t route_decode_workspace_bytes(int64_t n_experts, int64_t hidden);

/// Router, gating, plan and gather for `n_tokens` decode tokens.
/// - x_router       (in):  [n_tokens, hidden] f32, 16-byte aligned
/// - gate           (in):  [n_experts, hidden] f32, 16-byte aligned
/// - x              (in):  [n_tokens, hidden] bf16, the experts' input; may
///                         be null when `rows` is
/// - topk_ids       (out): [n_tokens, k] i32, by descending weight (ties:
///                         lower id first)
/// - topk_weights   (out): [n_tokens, k] f32, renormalised over the k (over
///                         the kept ones with `available`, as topk_gating)
/// - sorted_pair    (out): [n_tokens * k] i32, pair t * k + j of each grouped
///                         row (expert ascending, tokens ascending within one)
/// - expert_offsets (out): [n_experts + 1] i32
/// - pair_row       (out): [n_tokens * k] i32, grouped row of each pair
/// - rows           (out): [n_tokens * k, hidden] bf16 (or f16 with
///                         `rows_f16`), row r = x[sorted_pair[r] / k]; null
///                         skips the gather (routing only)
/// - workspace      (tmp): route_decode_workspace_bytes(n_experts, hidden),
///                         zeroed once before the first call (each call
///                         leaves its block counter at zero again); calls
///                         sharing it must run in stream order
/// - available      (in):  [n_experts] u8 or null, as topk_gating's
/// - degraded       (out): [n_tokens] u8 or null, as topk_gating's
void route_decode(const float* x_router, const float* gate,
                  const __nv_bfloat16* x, int64_t n_tokens, int64_t hidden,
                  int64_t n_experts, int64_t k, int32_t* topk_ids,
                  float* topk_weights, int32_t* sorted_pair,
                  int32_t* expert_offsets, int32_t* pair_row, void* rows,
                  bool rows_f16, void* workspace, cudaStream_t stream,
                  const uint8_t* available = nullptr,
                  uint8_t* degraded = nullptr);

} // namespace volt::cuda
