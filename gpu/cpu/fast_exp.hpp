#pragma once

#include <cstdint>
#include <cstring>

namespace volt::cpu {

/// e^x for x ≤ 0 (softmax inputs after subtracting the maximum, SwiGLU's
/// e^-|g|), within 2 ulp of std::exp; inputs below -87.3 give about 1e-38
/// rather than 0.
/// Unlike std::exp it is a few multiplies and adds that GCC vectorises in a
/// loop, and it rounds alike on every CPU and clone: exp was half the cost of
/// attention with small heads. Cephes' range reduction and polynomial.
[[gnu::always_inline]] inline float exp_nonpositive(float x) {
  // Clamp at -87.3 on the bits: for x ≤ 0 a larger magnitude is a larger
  // unsigned pattern. (A float compare would keep GCC from vectorising,
  // since it may trap.)
  uint32_t x_bits;
  std::memcpy(&x_bits, &x, sizeof(x));
  const uint32_t floor_bits = 0xc2ae999au; // -87.3f
  x_bits = x_bits < floor_bits ? x_bits : floor_bits;
  std::memcpy(&x, &x_bits, sizeof(x));
  // n = round(x / ln 2): adding and subtracting 1.5 · 2^23 rounds to nearest
  // (the compiler keeps both operations without -ffast-math).
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float e = (p * r) * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return e * scale;
}

} // namespace volt::cpu
