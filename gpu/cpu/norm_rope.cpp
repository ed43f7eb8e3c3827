// Position-wise CPU ops: RMSNorm and rotary embedding.

#include <cmath>
#include <vector>

#include "gpu/cpu/cpu_ops.hpp"
#include "gpu/cpu/dot.hpp"

namespace volt::cpu {

void rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim,
              float eps, float* out) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* row = x + r * dim;
    float mean_sq = dot(row, row, dim) / static_cast<float>(dim);
    float inv = 1.0f / std::sqrt(mean_sq + eps);
    float* dst = out + r * dim;
    for (int64_t i = 0; i < dim; ++i)
      dst[i] = weight[i] * (row[i] * inv);
  }
}

namespace {

/// Rotates the `n_heads` heads of one token by the angles' cos and sin.
void rotate(float* x, int64_t n_heads, int64_t head_dim, const float* cos_pos,
            const float* sin_pos) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      float a = v[i];
      float b = v[i + half];
      v[i] = a * cos_pos[i] - b * sin_pos[i];
      v[i + half] = b * cos_pos[i] + a * sin_pos[i];
    }
  }
}

} // namespace

void rope(float* q, int64_t q_heads, float* k, int64_t k_heads,
          const int32_t* positions, int64_t n_tokens, int64_t head_dim,
          double theta) {
  const int64_t half = head_dim / 2;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv_freq[i] = std::pow(theta, -2.0 * static_cast<double>(i)
                                    / static_cast<double>(head_dim));
  std::vector<float> cos_pos(static_cast<size_t>(half));
  std::vector<float> sin_pos(static_cast<size_t>(half));
  for (int64_t t = 0; t < n_tokens; ++t) {
    // Angles in double: HF's float32 angles differ from exact ones by < 1e-6
    // rad at the positions we test; the exact value is the better reference for
    // long contexts.
    for (int64_t i = 0; i < half; ++i) {
      double angle = static_cast<double>(positions[t]) * inv_freq[i];
      cos_pos[i] = static_cast<float>(std::cos(angle));
      sin_pos[i] = static_cast<float>(std::sin(angle));
    }
    rotate(q + t * q_heads * head_dim, q_heads, head_dim, cos_pos.data(),
           sin_pos.data());
    if (k != nullptr)
      rotate(k + t * k_heads * head_dim, k_heads, head_dim, cos_pos.data(),
             sin_pos.data());
  }
}

} // namespace volt::cpu
