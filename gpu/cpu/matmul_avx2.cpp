// matmul_nt for CPUs with AVX2, in intrinsics: eight dot products at a time,
// each with the eight partial sums of `dot` (gpu/cpu/dot.hpp) in the lanes of
// one register, reduced together in the order `dot` reduces one. The results
// are therefore bit-identical to the portable kernel (tested in gpu.cpu_ops),
// and the speed no longer depends on what GCC's vectoriser makes of scalar
// loops: the portable dot4 ran at 13 G multiply-adds/s at -O2 and at 2 G/s at
// -O3 on the development VM.
//
// Multiplies and adds stay separate (no FMA), so every CPU rounds alike.

#include <algorithm>

#include "gpu/cpu/dot.hpp"
#include "gpu/cpu/dot_avx2.hpp"
#include "gpu/cpu/matmul_kernels.hpp"

namespace volt::cpu::detail {

namespace {

/// Four input rows times two weight rows.
VOLT_AVX2 void block_4x2(const float* x, const float* w, int64_t r, int64_t o,
                         int64_t in_dim, int64_t out_dim, float* y) {
  const float* x0 = x + r * in_dim;
  const float* x1 = x0 + in_dim;
  const float* x2 = x1 + in_dim;
  const float* x3 = x2 + in_dim;
  const float* w0 = w + o * in_dim;
  const float* w1 = w0 + in_dim;
  alignas(32) float out[8];
  _mm256_store_ps(out, dot8({x0, x0, x1, x1, x2, x2, x3, x3},
                            {w0, w1, w0, w1, w0, w1, w0, w1}, in_dim));
#pragma GCC unroll 8
  for (int k = 0; k < 4; ++k) {
    y[(r + k) * out_dim + o] = out[2 * k];
    y[(r + k) * out_dim + o + 1] = out[2 * k + 1];
  }
}

/// One input row times eight weight rows.
VOLT_AVX2 void block_1x8(const float* x, const float* w, int64_t r, int64_t o,
                         int64_t in_dim, int64_t out_dim, float* y) {
  const float* xr = x + r * in_dim;
  const float* w0 = w + o * in_dim;
  _mm256_storeu_ps(y + r * out_dim + o,
                   dot8({xr, xr, xr, xr, xr, xr, xr, xr},
                        {w0, w0 + in_dim, w0 + 2 * in_dim, w0 + 3 * in_dim,
                         w0 + 4 * in_dim, w0 + 5 * in_dim, w0 + 6 * in_dim,
                         w0 + 7 * in_dim},
                        in_dim));
}

} // namespace

bool avx2_available() {
  static const bool available = __builtin_cpu_supports("avx2");
  return available;
}

__attribute__((target("avx2"))) void
matmul_nt_avx2(const float* x, const float* w, int64_t n_rows, int64_t in_dim,
               int64_t out_dim, float* y) {
  // Rows in chunks whose inputs stay in L1 while every weight row passes by
  // once; within a chunk each pair of weight rows is reused by all its rows.
  const int64_t chunk = std::max<int64_t>(4, (16 * 1024 / 4) / in_dim / 4 * 4);
  for (int64_t r0 = 0; r0 < n_rows; r0 += chunk) {
    const int64_t r1 = std::min(n_rows, r0 + chunk);
    const int64_t r4 = r0 + (r1 - r0) / 4 * 4;
    int64_t o = 0;
    for (; o + 2 <= out_dim; o += 2)
      for (int64_t r = r0; r < r4; r += 4)
        block_4x2(x, w, r, o, in_dim, out_dim, y);
    for (; o < out_dim; ++o)
      for (int64_t r = r0; r < r4; ++r)
        y[r * out_dim + o] = dot(x + r * in_dim, w + o * in_dim, in_dim);
    // The last one to three rows: eight outputs at a time.
    for (int64_t r = r4; r < r1; ++r) {
      int64_t o8 = 0;
      for (; o8 + 8 <= out_dim; o8 += 8)
        block_1x8(x, w, r, o8, in_dim, out_dim, y);
      for (; o8 < out_dim; ++o8)
        y[r * out_dim + o8] = dot(x + r * in_dim, w + o8 * in_dim, in_dim);
    }
  }
}

} // namespace volt::cpu::detail
