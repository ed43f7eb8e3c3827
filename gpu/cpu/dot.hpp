#pragma once

#include <cstdint>

namespace volt::cpu {

/// Dot product of two float vectors with eight independent partial sums, so
/// that the compiler vectorises it without -ffast-math. The summation order is
/// fixed (it depends only on n), which keeps results bit-identical across runs,
/// nodes and batch shapes.
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j)
      acc[j] += a[i + j] * b[i + j];
  float tail = 0;
  for (; i < n; ++i)
    tail += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5]))
         + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

} // namespace volt::cpu
