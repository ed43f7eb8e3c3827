#pragma once

// INT8 weight-only quantisation, CPU reference: per-output-channel (per row of
// a [out, in] matrix) symmetric int8 with one fp32 scale per row. The CUDA
// kernels (gpu/cuda/expert_ffn.cuh) dequantise the same format in registers.

#include <cstdint>

namespace volt::cpu {

/// scale[r] = max|w[r, :]| / 127 (0 for an all-zero row), q = round(w /
/// scale) in [-127, 127].
/// - w      (in):  [rows, cols] f32
/// - q      (out): [rows, cols] int8
/// - scales (out): [rows] f32
void quantize_int8_rows(const float* w, int64_t rows, int64_t cols, int8_t* q,
                        float* scales);

/// out[r, c] = q[r, c] * scales[r].
/// - q      (in):  [rows, cols] int8
/// - scales (in):  [rows] f32
/// - out    (out): [rows, cols] f32
void dequantize_int8_rows(const int8_t* q, const float* scales, int64_t rows,
                          int64_t cols, float* out);

/// One expert's SwiGLU FFN over int8 weights, dequantised row by row:
/// out = w2 · (silu(w1 · x) * (w3 · x)) with w = q * scale per row.
/// - x          (in):  [n_rows, hidden]
/// - q1, q3     (in):  [ffn, hidden] int8; s1, s3 (in): [ffn]
/// - q2         (in):  [hidden, ffn] int8; s2 (in): [hidden]
/// - scratch    (tmp): [2, n_rows, ffn]
/// - out        (out): [n_rows, hidden]
void swiglu_expert_int8(const float* x, const int8_t* q1, const float* s1,
                        const int8_t* q3, const float* s3, const int8_t* q2,
                        const float* s2, int64_t n_rows, int64_t hidden,
                        int64_t ffn, float* scratch, float* out);

} // namespace volt::cpu
