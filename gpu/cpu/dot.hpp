#pragma once

#include <cmath>
#include <cstdint>

namespace volt::cpu {

// Always inlined: a caller compiled for AVX2 (target_clones) then gets the
// loops in AVX2 too; an out-of-line copy would be built for baseline SSE2.

/// The reduction every eight-lane sum here ends with:
/// ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)) + tail. One definition,
/// so that the scalar and vector kernels cannot drift apart.
[[gnu::always_inline]] inline float reduce_lanes(const float* l, float tail) {
  return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
         + tail;
}

/// Dot product of two float vectors with eight independent partial sums, so
/// that the compiler vectorises it without -ffast-math. The summation order is
/// fixed (it depends only on n), which keeps results bit-identical across runs,
/// nodes and batch shapes.
[[gnu::always_inline]] inline float dot(const float* a, const float* b,
                                        int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j)
      acc[j] += a[i + j] * b[i + j];
  float tail = 0;
  for (; i < n; ++i)
    tail += a[i] * b[i];
  return reduce_lanes(acc, tail);
}

/// Sum of `n` floats in the order `dot` sums products: eight partial sums,
/// reduced ((0 + 4) + (1 + 5)) + ((2 + 6) + (3 + 7)), then the tail.
[[gnu::always_inline]] inline float sum8(const float* a, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j)
      acc[j] += a[i + j];
  float tail = 0;
  for (; i < n; ++i)
    tail += a[i];
  return reduce_lanes(acc, tail);
}

/// The larger of `a` and `b` as AVX's maxps picks it (`a` only when greater),
/// so that scalar and vector kernels agree even on +0 against -0.
[[gnu::always_inline]] inline float max_as_maxps(float a, float b) {
  return a > b ? a : b;
}

/// The largest of eight running maxima and then of `rest[0..n)`, taken in
/// the order both attention kernels take it.
[[gnu::always_inline]] inline float max_of_lanes(const float* lanes,
                                                 const float* rest, int64_t n) {
  float m = -INFINITY;
  for (int j = 0; j < 8; ++j)
    m = max_as_maxps(lanes[j], m);
  for (int64_t i = 0; i < n; ++i)
    m = max_as_maxps(rest[i], m);
  return m;
}

/// Four dot products against the same `b`, each computed exactly as `dot`
/// computes it (same partial sums, same reduction order): sharing the loads
/// of `b` saves a quarter of the memory traffic of four separate calls without
/// changing a single bit of the results.
[[gnu::always_inline]] inline void dot4(const float* a0, const float* a1,
                                        const float* a2, const float* a3,
                                        const float* b, int64_t n, float* out) {
  float acc0[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  float acc1[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  float acc2[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  float acc3[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      float bj = b[i + j];
      acc0[j] += a0[i + j] * bj;
      acc1[j] += a1[i + j] * bj;
      acc2[j] += a2[i + j] * bj;
      acc3[j] += a3[i + j] * bj;
    }
  float tail[4] = {0, 0, 0, 0};
  for (; i < n; ++i) {
    tail[0] += a0[i] * b[i];
    tail[1] += a1[i] * b[i];
    tail[2] += a2[i] * b[i];
    tail[3] += a3[i] * b[i];
  }
  const float* accs[4] = {acc0, acc1, acc2, acc3};
  for (int r = 0; r < 4; ++r)
    out[r] = reduce_lanes(accs[r], tail[r]);
}

} // namespace volt::cpu
