#pragma once

// AVX2 building blocks shared by the CPU kernels written in intrinsics
// (matmul_avx2.cpp, attention_avx2.cpp): eight dot products at a time, each
// with the eight partial sums of `dot` (gpu/cpu/dot.hpp) in the lanes of one
// register and reduced in `dot`'s order, so that they equal `dot` to the bit.
// Include only from files whose callers check for AVX2 at run time.

#include <immintrin.h>

#include <cstdint>

namespace volt::cpu::detail {

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
  // `dot` adds its tail even when empty (+0 turns a -0 sum into +0). The
  // tails go through registers: eight scalar stores read back as one vector
  // would stall store forwarding.
  if (n8 == n)
    return _mm256_add_ps(sums, _mm256_setzero_ps());
  return _mm256_add_ps(
    sums, _mm256_setr_ps(
            tail_sum(xs[0], ws[0], n8, n), tail_sum(xs[1], ws[1], n8, n),
            tail_sum(xs[2], ws[2], n8, n), tail_sum(xs[3], ws[3], n8, n),
            tail_sum(xs[4], ws[4], n8, n), tail_sum(xs[5], ws[5], n8, n),
            tail_sum(xs[6], ws[6], n8, n), tail_sum(xs[7], ws[7], n8, n)));
}

} // namespace volt::cpu::detail
