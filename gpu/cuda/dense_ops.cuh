#pragma once

// The dense ops of a Mixtral step on the GPU, around the cuBLAS projections:
// embedding lookup, RMSNorm, rotary embedding fused with the KV-cache write,
// greedy argmax over logits, and the conversions that load weights from a
// checkpoint's bytes. CPU twins (gpu/cpu/cpu_ops.hpp, gpu/cpu/quant.hpp):
// embedding, rms_norm, rope + kv_write, argmax, quantize_int8_rows; the
// conversions follow model/dtype.hpp.

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "model/dtype.hpp"

namespace volt::cuda {

/// Gathers rows of the embedding table, widened to f32.
/// - table (in):  [vocab, hidden] bf16
/// - ids   (in):  [n_tokens] i32, each in [0, vocab)
/// - out   (out): [n_tokens, hidden] f32
void embedding(const __nv_bfloat16* table, int64_t hidden, const int32_t* ids,
               int64_t n_tokens, float* out, cudaStream_t stream);

/// RMSNorm: y = x / sqrt(mean(x²) + eps) * weight, computed in f32, written
/// as bf16 (the projections' input), optionally with what bf16 leaves out
/// (out_lo, for the precise activations: y ≈ out_bf16 + out_lo; see
/// bf16_split.cuh), and/or f32 (the router's input).
/// - x        (in):  [*, dim] f32; output row r reads x row rows[r], or row r
///                   when rows is null
/// - rows     (in):  [n_rows] i32 or null
/// - weight   (in):  [dim] f32
/// - out_bf16 (out): [n_rows, dim] bf16, or null
/// - out_lo   (out): [n_rows, dim] bf16, bf16(y - out_bf16), or null (needs
///                   out_bf16)
/// - out_f32  (out): [n_rows, dim] f32, or null
void rms_norm(const float* x, const int32_t* rows, const float* weight,
              int64_t n_rows, int64_t dim, float eps, __nv_bfloat16* out_bf16,
              __nv_bfloat16* out_lo, float* out_f32, cudaStream_t stream);

/// The residual add before a norm, then the norm: x[r] += the sum of the
/// row's partial products (parts[0] + parts[1] + ..., in that order, then
/// added to x), written back to x, and rms_norm of the result. The dense
/// decode products' K splits (dense_decode.cuh) end here. CPU twin: those
/// adds in the same order, then cpu::rms_norm.
/// - x       (in/out): [n_rows, dim] f32
/// - parts   (in):     [n_parts, n_rows, dim] f32, n_parts >= 1
/// - the rest as rms_norm's (every row, in order)
void add_rms_norm(float* x, const float* parts, int64_t n_parts,
                  const float* weight, int64_t n_rows, int64_t dim, float eps,
                  __nv_bfloat16* out_bf16, __nv_bfloat16* out_lo,
                  float* out_f32, cudaStream_t stream);

/// Shapes of the fused q/k/v projection's output and of the paged KV cache.
struct qkv_layout {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  /// Token slots per KV page.
  int64_t page_size = 0;
};

/// Rotary embedding of q and k (Hugging Face's rotate-half form, angles from
/// a table) and the write of k and v into the paged cache: slot s is page
/// s / page_size, offset s % page_size.
/// - qkv      (in):  [qkv_parts, n_tokens, (n_heads + 2 n_kv_heads) *
///                   head_dim] f32: the q heads, then the k heads, then the v
///                   heads, as partial sums (a K-split product) added in
///                   order; qkv_parts >= 1
/// - positions(in):  [n_tokens] i32
/// - slots    (in):  [n_tokens] i32, the cache slot of each token; a
///                   negative slot (a padding row) writes no K/V
/// - rope_cos (in):  [max_positions, head_dim / 2] f32, cos(pos * θ^(-2i/d))
/// - rope_sin (in):  [max_positions, head_dim / 2] f32
/// - q        (out): [n_tokens, n_heads, head_dim] f32, rotated
/// - k_cache  (out): [num_pages, page_size, n_kv_heads, head_dim] bf16, the
///                   tokens' slots (rotated k)
/// - v_cache  (out): same layout, the tokens' slots
/// - k_lo     (out): null, or the layout of k_cache: what bf16 leaves out
///                   of each k (k ≈ k_cache + k_lo, the precise activations)
/// - v_lo     (out): the same for v; null exactly when k_lo is
void rope_kv_write(const float* qkv, int64_t qkv_parts,
                   const int32_t* positions,
                   const int32_t* slots, const float* rope_cos,
                   const float* rope_sin, const qkv_layout& layout,
                   int64_t n_tokens, float* q, __nv_bfloat16* k_cache,
                   __nv_bfloat16* v_cache, __nv_bfloat16* k_lo,
                   __nv_bfloat16* v_lo, cudaStream_t stream);

/// Greedy token of each row: the largest logit, the lowest id among equals,
/// as volt::token_sampler's greedy pick; -1 for a row that holds a NaN or an
/// infinity, which the engine answers with an error rather than a token (the
/// CPU executor does the same with volt::first_non_finite).
/// - logits (in):  [n_rows, vocab] f32
/// - out    (out): [n_rows] i32
void argmax_rows(const float* logits, int64_t n_rows, int64_t vocab,
                 int32_t* out, cudaStream_t stream);

/// Narrows checkpoint elements to bf16 (round to nearest even, as
/// volt::f32_to_bf16); bf16 input is copied.
/// - src (in):  [n] elements of `type` (f32, f16 or bf16), little-endian
/// - out (out): [n] bf16
void to_bf16(dtype type, const void* src, int64_t n, __nv_bfloat16* out,
             cudaStream_t stream);

/// Widens checkpoint elements to f32 (exact for f16 and bf16).
/// - src (in):  [n] elements of `type` (f32, f16 or bf16)
/// - out (out): [n] f32
void to_f32(dtype type, const void* src, int64_t n, float* out,
            cudaStream_t stream);

/// Per-row symmetric int8 quantisation, bit for bit the CPU's
/// (cpu::quantize_int8_rows on the f32 values): scale = max|w| / 127,
/// q = clamp(rint(w / scale), -127, 127), 0 where the scale is 0.
/// - src    (in):  [rows, cols] elements of `type` (f32, f16 or bf16)
/// - q      (out): [rows, cols] i8
/// - scales (out): [rows] f32
void quantize_int8_rows(dtype type, const void* src, int64_t rows, int64_t cols,
                        int8_t* q, float* scales, cudaStream_t stream);

} // namespace volt::cuda
