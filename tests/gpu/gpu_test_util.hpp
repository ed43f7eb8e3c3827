#pragma once

// Helpers shared by the GPU test suites: random inputs, bf16 rounding, the
// relative error ‖got − want‖ / ‖want‖, and the skip marker that ctest turns
// into "skipped" (SKIP_REGULAR_EXPRESSION in tests/gpu/CMakeLists.txt).

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "model/dtype.hpp"
#include "tests/test_format.hpp"

namespace volt::test {

/// Printed once per skipped test case; ctest reports the suite as skipped.
inline void report_gpu_skip(const std::string& why) {
  std::printf("VOLT_GPU_SKIPPED: %s\n", why.c_str());
}

inline std::vector<float> uniform_floats(size_t n, std::mt19937& gen,
                                         float scale = 1.0f) {
  std::uniform_real_distribution<float> dist{-scale, scale};
  std::vector<float> out(n);
  for (auto& x : out)
    x = dist(gen);
  return out;
}

/// Rounds every value to bf16 and back (what the GPU sees).
inline std::vector<float> round_bf16(const std::vector<float>& xs) {
  std::vector<float> out(xs.size());
  for (size_t i = 0; i < xs.size(); ++i)
    out[i] = bf16_to_f32(f32_to_bf16(xs[i]));
  return out;
}

inline std::vector<uint16_t> to_bf16_bits(const std::vector<float>& xs) {
  std::vector<uint16_t> out(xs.size());
  for (size_t i = 0; i < xs.size(); ++i)
    out[i] = f32_to_bf16(xs[i]);
  return out;
}

/// Rounds every value to f16 and back.
inline std::vector<float> round_f16(const std::vector<float>& xs) {
  std::vector<float> out(xs.size());
  for (size_t i = 0; i < xs.size(); ++i)
    out[i] = f16_to_f32(f32_to_f16(xs[i]));
  return out;
}

inline std::vector<uint16_t> to_f16_bits(const std::vector<float>& xs) {
  std::vector<uint16_t> out(xs.size());
  for (size_t i = 0; i < xs.size(); ++i)
    out[i] = f32_to_f16(xs[i]);
  return out;
}

/// ‖got − want‖ / ‖want‖; infinity if any value of `got` is not finite.
template <class T>
double rel_error(const std::vector<float>& got, const std::vector<T>& want) {
  double num = 0;
  double den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i]))
      return INFINITY;
    double d = double{got[i]} - double{want[i]};
    num += d * d;
    den += double{want[i]} * double{want[i]};
  }
  return std::sqrt(num / den);
}

/// Float64 SwiGLU of one row: w2 · (silu(w1 · x) * (w3 · x)).
/// - x (in): [hidden]; w1, w3 (in): [ffn, hidden]; w2 (in): [hidden, ffn]
inline void swiglu_row_f64(const float* x, const float* w1, const float* w3,
                           const float* w2, int64_t hidden, int64_t ffn,
                           double* out) {
  std::vector<double> h(static_cast<size_t>(ffn));
  for (int64_t j = 0; j < ffn; ++j) {
    double g = 0;
    double u = 0;
    for (int64_t i = 0; i < hidden; ++i) {
      g += double{w1[j * hidden + i]} * x[i];
      u += double{w3[j * hidden + i]} * x[i];
    }
    h[j] = g / (1.0 + std::exp(-g)) * u;
  }
  for (int64_t o = 0; o < hidden; ++o) {
    double acc = 0;
    for (int64_t j = 0; j < ffn; ++j)
      acc += double{w2[o * ffn + j]} * h[j];
    out[o] = acc;
  }
}

} // namespace volt::test
