// matmul_nt for CPUs with AVX2, in intrinsics: eight dot products at a time,
// each with the eight partial sums of `dot` (gpu/cpu/dot.hpp) in the lanes of
// one register, reduced together in the order `dot` reduces one. The results
// are therefore bit-identical to the portable kernel (tested in gpu.cpu_ops),
// and the speed no longer depends on what GCC's vectoriser makes of scalar
// loops: the portable dot4 ran at 13 G multiply-adds/s at -O2 and at 2 G/s at
// -O3 on the development VM.
//
// Multiplies and adds stay separate (no FMA), so every CPU rounds alike.

#include <immintrin.h>

#include <algorithm>

#include "gpu/cpu/dot.hpp"
#include "gpu/cpu/matmul_kernels.hpp"

namespace volt::cpu::detail {

namespace {

// Unrolled by pragma: at -O2 GCC would keep the eight accumulators in memory.
#define VOLT_AVX2 __attribute__((target("avx2"), always_inline)) inline

/// acc[i] lanes hold the eight partial sums of output i; returns the eight
/// outputs in order, each reduced as
/// ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)).
VOLT_AVX2 __m256 reduce8(const __m256 (&acc)[8]) {
  __m256 halves[4];
#pragma GCC unroll 8
  for (int p = 0; p < 4; ++p) {
    // [lo(a), lo(b)] + [hi(a), hi(b)]: lanes l_j + l_{j+4} of both outputs.
    __m256 lo = _mm256_permute2f128_ps(acc[2 * p], acc[2 * p + 1], 0x20);
    __m256 hi = _mm256_permute2f128_ps(acc[2 * p], acc[2 * p + 1], 0x31);
    halves[p] = _mm256_add_ps(lo, hi);
  }
  // hadd adds neighbouring lanes: (l0+l4)+(l1+l5) and (l2+l6)+(l3+l7) ...
  __m256 quarters0 = _mm256_hadd_ps(halves[0], halves[1]);
  __m256 quarters1 = _mm256_hadd_ps(halves[2], halves[3]);
  // ... and once more for the final sum; the outputs come out as
  // [0, 2, 4, 6, 1, 3, 5, 7].
  __m256 sums = _mm256_hadd_ps(quarters0, quarters1);
  return _mm256_permutevar8x32_ps(sums,
                                  _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/// The scalar tail of `dot` (elements past the last multiple of eight).
VOLT_AVX2 float tail_sum(const float* a, const float* b, int64_t from,
                         int64_t n) {
  float tail = 0;
  for (int64_t i = from; i < n; ++i)
    tail += a[i] * b[i];
  return tail;
}

/// Eight dot products: x rows `xs[i]` against weight rows `ws[i]`.
/// Shared loads are the caller's business: the same pointer may appear in
/// several slots and the compiler loads it once per step.
VOLT_AVX2 __m256 dot8(const float* const (&xs)[8], const float* const (&ws)[8],
                      int64_t n) {
  __m256 acc[8];
#pragma GCC unroll 8
  for (auto& a : acc)
    a = _mm256_setzero_ps();
  const int64_t n8 = n & ~int64_t{7};
  for (int64_t i = 0; i < n8; i += 8)
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j)
      acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(_mm256_loadu_ps(xs[j] + i),
                                                   _mm256_loadu_ps(ws[j] + i)));
  __m256 sums = reduce8(acc);
  alignas(32) float tails[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j)
    tails[j] = tail_sum(xs[j], ws[j], n8, n);
  return _mm256_add_ps(sums, _mm256_load_ps(tails));
}

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

#undef VOLT_AVX2

} // namespace

bool matmul_nt_avx2_available() {
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
