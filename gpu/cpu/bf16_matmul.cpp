// y = x · wᵀ with bf16 weights, for the experts an expert cache computes on
// the host instead of copying them to the GPU: the weights stay in the
// pinned host copy the cache keeps (bf16, the GPU's layout), and each is
// widened to float (exact) as it is read. Sums follow `dot` (gpu/cpu/dot.hpp),
// so the result equals matmul_nt over the widened weights to the bit, on
// either kernel. The weights are read once per call, whatever the rows: a
// host miss has a few rows and is bound by the host's memory bandwidth, so
// the output rows are split over the compute threads.

#include <algorithm>
#include <cstring>

#include "gpu/cpu/cpu_ops.hpp"
#include "gpu/cpu/dot.hpp"
#include "gpu/cpu/dot_avx2.hpp"
#include "gpu/cpu/matmul_kernels.hpp"
#include "gpu/cpu/parallel.hpp"

namespace volt::cpu {

namespace detail {

namespace {

[[gnu::always_inline]] inline float widen(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

/// `dot` of a float row and a bf16 row.
float dot_bf16(const float* x, const uint16_t* w, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j)
      acc[j] += x[i + j] * widen(w[i + j]);
  float tail = 0;
  for (; i < n; ++i)
    tail += x[i] * widen(w[i]);
  return reduce_lanes(acc, tail);
}

VOLT_AVX2 __m256 load_bf16(const uint16_t* w) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

/// One input row times eight weight rows starting at `w0`, `stride`
/// elements apart, each reduced as `dot` reduces (dot8's order, bf16
/// weights).
VOLT_AVX2 __m256 dot8_bf16(const float* x, const uint16_t* w0, int64_t n,
                           int64_t stride) {
  __m256 acc[8];
#pragma GCC unroll 8
  for (auto& a : acc)
    a = _mm256_setzero_ps();
  const int64_t n8 = n & ~int64_t{7};
  for (int64_t i = 0; i < n8; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j)
      acc[j] = _mm256_add_ps(acc[j],
                             _mm256_mul_ps(xv, load_bf16(w0 + j * stride + i)));
  }
  __m256 sums = reduce8(acc);
  alignas(32) float tails[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    float t = 0;
    for (int64_t i = n8; i < n; ++i)
      t += x[i] * widen(w0[j * stride + i]);
    tails[j] = t;
  }
  return _mm256_add_ps(sums, _mm256_load_ps(tails));
}

} // namespace

void matmul_nt_bf16_portable(const float* x, const uint16_t* w, int64_t n_rows,
                             int64_t in_dim, int64_t o0, int64_t o1,
                             int64_t out_dim, float* y, int64_t w_stride) {
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t r = 0; r < n_rows; ++r)
      y[r * out_dim + o] = dot_bf16(x + r * in_dim, w + o * w_stride, in_dim);
}

__attribute__((target("avx2"))) void
matmul_nt_bf16_avx2(const float* x, const uint16_t* w, int64_t n_rows,
                    int64_t in_dim, int64_t o0, int64_t o1, int64_t out_dim,
                    float* y, int64_t w_stride) {
  // Eight weight rows at a time, reused from cache by every input row.
  int64_t o = o0;
  alignas(32) float out[8];
  for (; o + 8 <= o1; o += 8)
    for (int64_t r = 0; r < n_rows; ++r) {
      _mm256_store_ps(out, dot8_bf16(x + r * in_dim, w + o * w_stride, in_dim,
                                     w_stride));
      std::copy_n(out, 8, y + r * out_dim + o);
    }
  for (; o < o1; ++o)
    for (int64_t r = 0; r < n_rows; ++r)
      y[r * out_dim + o] = dot_bf16(x + r * in_dim, w + o * w_stride, in_dim);
}

} // namespace detail

void round_to_bf16(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &x[i], sizeof(bits));
    bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
    std::memcpy(&x[i], &bits, sizeof(bits));
  }
}

void matmul_nt_bf16(const float* x, const uint16_t* w, int64_t n_rows,
                    int64_t in_dim, int64_t out_dim, float* y,
                    int64_t w_stride) {
  if (w_stride == 0)
    w_stride = in_dim;
  // Parts of 64 weight rows: 512 KiB of Mixtral's weights, worth a thread.
  parallel_for(out_dim, 64, [&](int64_t o0, int64_t o1) {
    if (detail::avx2_available())
      detail::matmul_nt_bf16_avx2(x, w, n_rows, in_dim, o0, o1, out_dim, y,
                                  w_stride);
    else
      detail::matmul_nt_bf16_portable(x, w, n_rows, in_dim, o0, o1, out_dim,
                                      y, w_stride);
  });
}

} // namespace volt::cpu
