#pragma once

// Causal GQA attention of prefill chunks on the tensor cores, over the same
// paged bf16 KV cache as paged_attention: the step's rows come in query
// tiles of up to prefill_tile_rows rows of one sequence at consecutive
// positions, and each tile's keys are read in tiles of 64 through the block
// table (earlier chunks and cached prefix pages included). Rows that no tile
// covers (decode rows, short chunks) are left alone, for paged_attention with
// attention_batch::rows. CPU twin: volt::cpu::paged_attention on the same K/V
// and q rounded to bf16.

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "gpu/cuda/attention.cuh"

namespace volt::cuda {

/// Rows of a query tile: four warps of 16 rows.
constexpr int64_t prefill_tile_rows = 64;

/// True when prefill_attention runs this shape: head_dim 16, 32, 64 or 128,
/// n_heads a multiple of n_kv_heads, page_size >= 1, window >= 0.
bool prefill_attention_supported(const attention_shape& shape);

/// out[r, h] = softmax(q[r, h] · K[keys of r, h / group]ᵀ / sqrt(head_dim)) ·
/// V[keys of r, h / group] for the rows of the tiles, keys of r being
/// [max(0, pos - window + 1), pos] (window 0: from 0) of r's sequence; q is
/// rounded to bf16, P to bf16 before P·V, the softmax and the sums are f32.
/// Tile t covers step rows [tile_first_row[t], tile_first_row[t] +
/// tile_rows[t]), 0 <= tile_rows[t] <= prefill_tile_rows, rows of one
/// sequence (the block table of its first row serves them all) at consecutive
/// positions; a row of negative position gets zeros. The launch configuration
/// depends only on the shape and n_tiles, so a captured CUDA graph replays
/// for any tiles, positions and tables. batch.n_rows, max_keys and rows are
/// not used.
/// - q              (in):  [step rows, n_heads, head_dim] f32, 16-byte aligned
/// - k_cache        (in):  [num_pages, page_size, n_kv_heads, head_dim] bf16
/// - v_cache        (in):  same layout
/// - batch          (in):  positions, row_table, block_tables, table_stride
/// - tile_first_row (in):  [n_tiles] i32, device
/// - tile_rows      (in):  [n_tiles] i32, device
/// - out            (out): [step rows, n_heads, head_dim] bf16, 16-byte
///                         aligned; rows outside the tiles are not written
void prefill_attention(const float* q, const __nv_bfloat16* k_cache,
                       const __nv_bfloat16* v_cache,
                       const attention_batch& batch,
                       const int32_t* tile_first_row, const int32_t* tile_rows,
                       int64_t n_tiles, const attention_shape& shape,
                       __nv_bfloat16* out, cudaStream_t stream);

} // namespace volt::cuda
