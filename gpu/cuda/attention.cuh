#pragma once

// Causal grouped-query attention over a paged bf16 KV cache (or, for the
// precise activations, bf16 pairs), for every query row of a step at once:
// decode rows (one per sequence) and prefill chunks alike. CPU twin:
// volt::cpu::paged_attention on the same K/V rounded to bf16 (or to a pair)
// and widened back to f32.

#include <cstddef>
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace volt::cuda {

/// Head dimensions the kernels are built for.
bool attention_head_dim_supported(int64_t head_dim);

/// One step's query rows and where their keys live.
struct attention_batch {
  /// Query rows.
  int64_t n_rows = 0;
  /// [n_rows] i32: the row's position in its sequence, below max_keys; it
  /// attends to keys [max(0, pos - window + 1), pos] (window 0: from 0). A
  /// negative position (a padding row) attends to nothing and gets zeros.
  const int32_t* positions = nullptr;
  /// [n_rows] i32: the row's block table, an index into block_tables.
  const int32_t* row_table = nullptr;
  /// [n_tables, table_stride] i32: physical page of each logical page.
  const int32_t* block_tables = nullptr;
  int64_t table_stride = 0;
  /// Upper bound of any row's position + 1 (sizes the key splits; host).
  int64_t max_keys = 0;
  /// [n_rows] i32 when set: the step rows to compute, each at most once (the
  /// others are left alone); positions, row_table, q and out are indexed by
  /// these rows, and n_rows counts them. Null: rows 0 .. n_rows - 1.
  const int32_t* rows = nullptr;
};

/// Shape of the attention and the cache.
struct attention_shape {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t page_size = 0;
  /// Keys older than this many positions are masked; 0: no window.
  int64_t sliding_window = 0;
};

/// The precise activations' halves of the cache and the output (see
/// bf16_split.cuh): what bf16 leaves out of each K and V element and of each
/// output; all null (bf16 alone) or all set.
struct split_kv {
  const __nv_bfloat16* k_lo = nullptr; // the layout of k_cache
  const __nv_bfloat16* v_lo = nullptr;
  __nv_bfloat16* out_lo = nullptr; // the layout of out
};

/// Scratch bytes for `paged_attention` with these rows and max_keys (0 when
/// the keys need no split).
size_t paged_attention_workspace_bytes(const attention_shape& shape,
                                       int64_t n_rows, int64_t max_keys);

/// out[r, h] = softmax(q[r, h] · K[keys of r, h / group]ᵀ / sqrt(head_dim)) ·
/// V[keys of r, h / group], group = n_heads / n_kv_heads, softmax in f32.
/// Long key ranges are split over blocks (partial maxima, sums and outputs
/// merged by a second kernel). The launch configuration depends only on the
/// shape, n_rows and max_keys, so a CUDA graph captured once replays for any
/// positions and tables within those bounds. With batch.rows, q, out and
/// the row arrays span the whole step (the listed rows are read and written,
/// no others), and the workspace sizes by n_rows, the count of listed rows.
/// - q         (in):  [step rows, n_heads, head_dim] f32
/// - k_cache   (in):  [num_pages, page_size, n_kv_heads, head_dim] bf16
/// - v_cache   (in):  same layout
/// - rest      (in/out): split_kv: K and V are k_cache + k_lo, v_cache + v_lo
///                    and the output's rest goes to out_lo; or all null
/// - workspace (tmp): paged_attention_workspace_bytes(shape, n_rows, max_keys)
/// - out       (out): [step rows, n_heads, head_dim] bf16
void paged_attention(const float* q, const __nv_bfloat16* k_cache,
                     const __nv_bfloat16* v_cache, const split_kv& rest,
                     const attention_batch& batch,
                     const attention_shape& shape, void* workspace,
                     size_t workspace_bytes, __nv_bfloat16* out,
                     cudaStream_t stream);

} // namespace volt::cuda
