#pragma once

// SwiGLU FFN of the experts of one layer over token rows grouped by expert:
// y = w2 · (silu(w1 · x) * (w3 · x)), with weights in bf16 or int8
// (per-output-channel symmetric, fp32 scales, dequantised inside the kernel).
// CPU twins: volt::cpu::swiglu_expert and volt::cpu::swiglu_expert_int8.
//
// Two paths:
// - decode: few rows per expert, bandwidth bound. One warp computes 16 output
//   rows with tensor-core mma.sync (m16n8k16, tokens as the n = 8 side),
//   loading the weights once with 16-byte loads straight from HBM (bf16
//   weights with bf16 activations; int8 weights widened to f16 in registers,
//   with f16 activations); w1 and w3 share the warp so silu(g) * u happens in
//   registers (or, split along K for one token tile, in a reduction kernel);
//   w2 is split along K so that even one expert fills the GPU (partials
//   summed by combine).
// - gemm: many rows per expert, tensor-core bound: cuBLAS GEMMs per expert
//   (int8 weights dequantised to a bf16 scratch per expert first).

#include <cstddef>
#include <cstdint>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace volt::cuda {

/// Storage of expert weights on the device.
enum class weight_format { bf16, int8 };

/// The experts of one layer on the device.
struct expert_layer {
  weight_format format = weight_format::bf16;
  int64_t n_experts = 0;
  int64_t hidden = 0;
  int64_t ffn = 0;
  /// [n_experts, 2 * ffn, hidden]: rows [0, ffn) are w1, [ffn, 2 ffn) are w3.
  const void* w13 = nullptr;
  /// [n_experts, hidden, ffn].
  const void* w2 = nullptr;
  /// int8 only: [n_experts, 2 * ffn] and [n_experts, hidden] f32 scales.
  const float* s13 = nullptr;
  const float* s2 = nullptr;

  /// Bytes of the weights of one expert (scales included).
  size_t expert_bytes() const;
};

/// Which path computes the FFN.
enum class ffn_path { automatic, decode, gemm };

/// Rows grouped by expert: group g has rows [offsets[g], offsets[g + 1]) and
/// runs expert (local index) expert[g].
struct ffn_groups {
  int64_t n_groups = 0;
  /// The expert index of each group; a group whose index is negative is
  /// skipped (its rows' outputs are left as they were).
  const int32_t* expert = nullptr; // device [n_groups]
  const int32_t* offsets = nullptr; // device [n_groups + 1]
  /// Host copies; required by the gemm path, unused by decode.
  const int32_t* host_expert = nullptr;
  const int32_t* host_offsets = nullptr;
  /// Rows per group the decode kernel tiles for in one pass (groups with
  /// more take further passes); 0: max_rows.
  int64_t rows_hint = 0;
};

/// Scratch the FFN needs for n_rows rows (both paths).
size_t expert_ffn_workspace_bytes(const expert_layer& layer, int64_t n_rows);

/// Split-K factor of the decode path's w2 product; y holds that many partials.
int64_t expert_ffn_splits(const expert_layer& layer, ffn_path path);

/// The path `automatic` takes for `layer` when no group has more than
/// max_rows rows.
ffn_path choose_ffn_path(const expert_layer& layer, int64_t max_rows);

/// Knobs of the decode path (process-wide; `bench moe-layer --sweep-decode`
/// times the variants). The defaults are the best measured on an H100 and an
/// H200 (docs/PERFORMANCE.md).
struct decode_tuning {
  /// 16-byte loads per thread and row per step: 1 or 2 (2: each warp reads
  /// whole 128-byte lines of a row). Falls back to 1 where K does not allow.
  int chunks = 2;
  /// Split-K factor (1, 2 or 4) of the w1/w3 product; 0: automatic, 4 when
  /// one token tile (<= 8 rows) per expert, else 1 (splitting helps few
  /// rows fill the GPU, and costs a partial-sum round trip at more).
  int64_t w13_splits = 0;
  /// Split-K factor (1, 2 or 4) of the w2 product.
  int64_t w2_splits = 4;
  /// At 17+ rows per expert (3-4 token tiles), load x 8 bytes at a time
  /// just before each mma rather than with the weights: fewer registers,
  /// more resident warps.
  bool x_late = false;
  /// moe_layer_runner tiles each expert for this many times the average
  /// rows per expert (n * k / n_experts) in one pass, not for the n-token
  /// bound; heavier experts take another pass. 0: tile for the bound.
  int64_t rows_hint_factor = 2;
  /// `automatic` takes the decode path up to this many rows per expert
  /// (H100, commit bb9c411): bf16 decode beats cuBLAS at 32 tokens (0.97 vs
  /// 1.10 ms) and loses at 128 (1.76 vs 1.15); int8 decode beats dequantise
  /// + cuBLAS up to 256 tokens (1.96 vs ~2.8 ms) and loses at 512 (3.61 vs
  /// 2.88 ms).
  int64_t bf16_decode_max_rows = 32;
  int64_t int8_decode_max_rows = 256;
  /// Beyond those rows, `automatic` still takes the decode path while its
  /// passes (one per 32 rows of the largest group) re-read at most this many
  /// bytes of one expert's weights. Small experts then never meet cuBLAS,
  /// which was far slower for them (H100, the tiny Mixtral's 48 KiB experts:
  /// a 512-row prefill step of `bench serve` took 14.1 ms with cuBLAS for the
  /// groups over 32 rows and 4.1 ms with the decode kernel for all;
  /// docs/PERFORMANCE.md). Mixtral's 336 MiB experts keep the row limits.
  int64_t decode_reread_max_bytes = int64_t{16} << 20;
  /// The dense projections of a step (dense_decode.cuh) take the decode
  /// kernel up to this many rows, cuBLAS beyond; 0: always cuBLAS (`bench
  /// model --dense-decode-rows`).
  int64_t dense_decode_max_rows = 32;
};

void set_decode_tuning(const decode_tuning& t);
decode_tuning get_decode_tuning();

/// Checks that the shapes suit the kernels (multiples of 64; 16-byte rows);
/// returns null or the reason.
const char* expert_ffn_unsupported(const expert_layer& layer);

/// True where the decode path of int8 weights runs: its activations (rows)
/// are f16, widened from int8 in 5 instructions per 4 weights instead of
/// the 11 that bf16 needs. Everywhere else rows are bf16.
bool decode_takes_f16(const expert_layer& layer, ffn_path path);

/// Runs every group's expert over its rows.
/// - rows      (in):  [n_rows, hidden] bf16, or f16 where decode_takes_f16
///                    (resolve `automatic` with choose_ffn_path first),
///                    grouped
/// - max_rows  (in):  an upper bound of the rows of any group (host)
/// - workspace (tmp): expert_ffn_workspace_bytes(layer, n_rows)
/// - y         (out): [splits, n_rows, hidden] f32 partials, splits =
///                    expert_ffn_splits(layer, path taken); sum them (combine
///                    or sum_splits)
/// Returns the path taken.
ffn_path expert_ffn(const expert_layer& layer, const ffn_groups& groups,
                    const void* rows, int64_t n_rows, int64_t max_rows,
                    ffn_path path, void* workspace, size_t workspace_bytes,
                    float* y, cublasHandle_t cublas, cudaStream_t stream);

/// Expert e's w13 ([2 ffn, hidden]) or w2 ([hidden, ffn]) as bf16 for
/// cuBLAS: in place, or int8 dequantised into `scratch` (that matrix's
/// size; stream-ordered, so one scratch serves every expert in turn).
const __nv_bfloat16* expert_w13_bf16(const expert_layer& layer, int64_t e,
                                     __nv_bfloat16* scratch,
                                     cudaStream_t stream);
const __nv_bfloat16* expert_w2_bf16(const expert_layer& layer, int64_t e,
                                    __nv_bfloat16* scratch,
                                    cudaStream_t stream);

/// Calls fn(first row, rows, expert) for every group with rows and an
/// expert, by the groups' host copies (the cuBLAS paths: one GEMM each).
template <class F>
void for_each_host_group(const ffn_groups& groups, F&& fn) {
  for (int64_t g = 0; g < groups.n_groups; ++g) {
    const int64_t m = groups.host_offsets[g + 1] - groups.host_offsets[g];
    if (m > 0 && groups.host_expert[g] >= 0)
      fn(int64_t{groups.host_offsets[g]}, m, int64_t{groups.host_expert[g]});
  }
}

/// Scratch expert_ffn_precise needs for n_rows rows.
size_t expert_ffn_precise_workspace_bytes(const expert_layer& layer,
                                          int64_t n_rows);

/// The gemm path with the precise activations (bf16_split.cuh): each row is
/// rows_hi + rows_lo; both halves go through each product (cuBLAS per
/// expert, summed in f32), SwiGLU runs in f32 and is split again for w2.
/// CPU twin: volt::cpu::swiglu_expert over the rows' values (hi + lo) and
/// the experts' bf16 (or dequantised int8) weights, to float32 rounding.
/// - groups    (in):  as expert_ffn's, host copies required
/// - rows_hi   (in):  [n_rows, hidden] bf16, grouped
/// - rows_lo   (in):  [n_rows, hidden] bf16, what bf16 left out of each row
/// - workspace (tmp): expert_ffn_precise_workspace_bytes(layer, n_rows)
/// - y         (out): [n_rows, hidden] f32 (one partial)
void expert_ffn_precise(const expert_layer& layer, const ffn_groups& groups,
                        const __nv_bfloat16* rows_hi,
                        const __nv_bfloat16* rows_lo, int64_t n_rows,
                        void* workspace, size_t workspace_bytes, float* y,
                        cublasHandle_t cublas, cudaStream_t stream);

/// expert_ffn over a layer of one expert (such as the device's part of an
/// expert split with the host) and `count` rows, through its own one-group
/// table, which this writes: `table_host` (pinned) and `table_dev`, three
/// ints each (expert 0, offsets 0 and count; a kernel copies them, so they
/// never wait behind the copy engine's work).
/// - rows (in):  [count, hidden] bf16
/// - y    (out): [expert_ffn_splits(one, path), count, hidden] f32 partials,
///               path = choose_ffn_path(one, count), which this returns
ffn_path expert_ffn_single(const expert_layer& one, const void* rows,
                           int64_t count, int32_t* table_host,
                           int32_t* table_dev, void* workspace,
                           size_t workspace_bytes, float* y,
                           cublasHandle_t cublas, cudaStream_t stream);

/// Dequantises per-row int8 weights to bf16: out[r, c] = bf16(q[r, c] * s[r]).
/// cols must be a multiple of 16 (the kernels need multiples of 64 anyway).
/// - q   (in):  [rows, cols] int8
/// - s   (in):  [rows] f32
/// - out (out): [rows, cols] bf16
void dequantize_int8(const int8_t* q, const float* s, int64_t rows,
                     int64_t cols, __nv_bfloat16* out, cudaStream_t stream);

} // namespace volt::cuda
