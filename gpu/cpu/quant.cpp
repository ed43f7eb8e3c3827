// INT8 weight-only quantisation and the SwiGLU expert over it.

#include "gpu/cpu/quant.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "gpu/cpu/cpu_ops.hpp"

namespace volt::cpu {

namespace {

/// y[r, o] = s[o] * Σ_i x[r, i] q[o, i]: the scale factors out of each dot.
void matmul_nt_int8(const float* x, const int8_t* q, const float* s,
                    int64_t n_rows, int64_t in_dim, int64_t out_dim,
                    float* y) {
  std::vector<float> row(static_cast<size_t>(in_dim));
  for (int64_t o = 0; o < out_dim; ++o) {
    std::copy(q + o * in_dim, q + (o + 1) * in_dim, row.begin());
    for (int64_t r = 0; r < n_rows; ++r) {
      const float* xr = x + r * in_dim;
      float acc = 0;
      for (int64_t i = 0; i < in_dim; ++i)
        acc += xr[i] * row[i];
      y[r * out_dim + o] = acc * s[o];
    }
  }
}

} // namespace

void quantize_int8_rows(const float* w, int64_t rows, int64_t cols, int8_t* q,
                        float* scales) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = w + r * cols;
    float max_abs = 0;
    for (int64_t c = 0; c < cols; ++c)
      max_abs = std::max(max_abs, std::fabs(wr[c]));
    float scale = max_abs / 127.0f;
    scales[r] = scale;
    for (int64_t c = 0; c < cols; ++c) {
      float v = scale > 0 ? std::nearbyint(wr[c] / scale) : 0.0f;
      q[r * cols + c] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
  }
}

void dequantize_int8_rows(const int8_t* q, const float* scales, int64_t rows,
                          int64_t cols, float* out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[r * cols + c] = q[r * cols + c] * scales[r];
}

void swiglu_expert_int8(const float* x, const int8_t* q1, const float* s1,
                        const int8_t* q3, const float* s3, const int8_t* q2,
                        const float* s2, int64_t n_rows, int64_t hidden,
                        int64_t ffn, float* scratch, float* out) {
  float* gate = scratch;
  float* up = scratch + n_rows * ffn;
  matmul_nt_int8(x, q1, s1, n_rows, hidden, ffn, gate);
  matmul_nt_int8(x, q3, s3, n_rows, hidden, ffn, up);
  for (int64_t i = 0; i < n_rows * ffn; ++i) {
    float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
  matmul_nt_int8(gate, q2, s2, n_rows, ffn, hidden, out);
}

} // namespace volt::cpu
