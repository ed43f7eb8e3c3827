// paged_attention for CPUs with AVX2, in intrinsics, computing exactly what
// paged_attention_portable computes (gpu/cpu/attention_kernels.hpp says what;
// gpu.cpu_ops checks the bits): scores eight dot products at a time, the
// maximum, exponentials and denominator eight lanes at a time, and each head's
// V sums eight output elements per register. GCC's vectoriser left most of
// the portable loops scalar or vectorised them across positions with shuffles.

#include <cmath>
#include <vector>

#include "gpu/cpu/attention_kernels.hpp"
#include "gpu/cpu/dot.hpp"
#include "gpu/cpu/dot_avx2.hpp"
#include "gpu/cpu/fast_exp.hpp"

namespace volt::cpu::detail {

namespace {

/// exp_nonpositive (gpu/cpu/fast_exp.hpp) on eight lanes, operation for
/// operation, so that each lane equals the scalar result to the bit.
VOLT_AVX2 __m256 exp_nonpositive8(__m256 x) {
  __m256i bits = _mm256_min_epu32(_mm256_castps_si256(x),
                                  _mm256_set1_epi32(int32_t(0xc2ae999au)));
  x = _mm256_castsi256_ps(bits);
  const __m256 magic = _mm256_set1_ps(12582912.0f);
  __m256 n = _mm256_sub_ps(
    _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                  magic),
    magic);
  __m256 r = _mm256_sub_ps(
    _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f))),
    _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  for (float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f,
                  1.6666665459e-1f, 5.0000001201e-1f})
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(c));
  __m256 e
    = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), r),
                    _mm256_set1_ps(1.0f));
  __m256i scale = _mm256_slli_epi32(
    _mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(e, _mm256_castsi256_ps(scale));
}

/// Scores of one query head against `count` consecutive key rows (`stride`
/// floats apart): eight dot products at a time, each times `scale`; the rest
/// one by one (the same sums, see dot_avx2.hpp).
VOLT_AVX2 void score_run(const float* q, const float* k, int64_t stride,
                         int64_t count, int64_t hd, float scale, float* dst) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8, k += 8 * stride)
    _mm256_storeu_ps(
      dst + i,
      _mm256_mul_ps(dot8({q, q, q, q, q, q, q, q},
                         {k, k + stride, k + 2 * stride, k + 3 * stride,
                          k + 4 * stride, k + 5 * stride, k + 6 * stride,
                          k + 7 * stride},
                         hd),
                    _mm256_set1_ps(scale)));
  for (; i < count; ++i, k += stride)
    dst[i] = dot(q, k, hd) * scale;
}

/// Largest of n scores, as paged_attention_portable takes it.
VOLT_AVX2 float max_of(const float* sc, int64_t n) {
  __m256 lanes = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    lanes = _mm256_max_ps(_mm256_loadu_ps(sc + i), lanes);
  alignas(32) float l[8];
  _mm256_store_ps(l, lanes);
  return max_of_lanes(l, sc + i, n - i);
}

/// sc[i] = e^(sc[i] - max) for i < n; returns their sum in sum8's order.
VOLT_AVX2 float exponentiate(float* sc, int64_t n, float max_score) {
  const __m256 m = _mm256_set1_ps(max_score);
  __m256 lanes = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp_nonpositive8(_mm256_sub_ps(_mm256_loadu_ps(sc + i), m));
    _mm256_storeu_ps(sc + i, e);
    lanes = _mm256_add_ps(lanes, e);
  }
  float tail = 0;
  for (; i < n; ++i) {
    sc[i] = exp_nonpositive(sc[i] - max_score);
    tail += sc[i];
  }
  alignas(32) float l[8];
  _mm256_store_ps(l, lanes);
  return reduce_lanes(l, tail);
}

/// One query group: scores a page run at a time, then each head's softmax,
/// then the V sums of up to four heads and sixteen columns per pass over the
/// V rows, eight per register, each element in ascending position order.
__attribute__((target("avx2"))) void
attend_avx2(const query_group& qg, const kv_pages& cache,
            const int32_t* block_table, const attention_dims& dims) {
  const int64_t hd = dims.head_dim;
  const int64_t group = dims.n_heads / dims.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const auto stride = cache.token_stride();
  const int64_t n_ctx = qg.n_ctx();
  thread_local std::vector<float> denoms; // [group]
  denoms.resize(static_cast<size_t>(group));
  for (int64_t pos = qg.first; pos <= qg.last;) {
    auto run = run_at(cache, block_table, pos, qg.last, qg.kv_head);
    for (int64_t g = 0; g < group; ++g)
      score_run(qg.q + g * hd, cache.k + run.offset, stride, run.count, hd,
                scale, qg.scores + g * n_ctx + (pos - qg.first));
    pos += run.count;
  }
  for (int64_t g = 0; g < group; ++g) {
    float* sc = qg.scores + g * n_ctx;
    denoms[g] = exponentiate(sc, n_ctx, max_of(sc, n_ctx));
  }
  const int64_t hd8 = hd / 8 * 8;
  for (int64_t d = 0; d < hd8; d += 16)
    for (int64_t g0 = 0; g0 < group; g0 += 4) {
      const int heads = static_cast<int>(std::min<int64_t>(4, group - g0));
      const int blocks = d + 16 <= hd8 ? 2 : 1;
      __m256 acc[4][2];
#pragma GCC unroll 4
      for (auto& a : acc)
        a[0] = a[1] = _mm256_setzero_ps();
      const float* sc = qg.scores + g0 * n_ctx;
      for (int64_t pos = qg.first; pos <= qg.last;) {
        auto run = run_at(cache, block_table, pos, qg.last, qg.kv_head);
        const float* v_row = cache.v + run.offset + d;
        const float* w = sc + (pos - qg.first);
        for (int64_t i = 0; i < run.count; ++i, v_row += stride) {
          const __m256 v0 = _mm256_loadu_ps(v_row);
          const __m256 v1 = blocks == 2 ? _mm256_loadu_ps(v_row + 8) : v0;
#pragma GCC unroll 4
          for (int h = 0; h < 4; ++h)
            if (h < heads) {
              const __m256 wh = _mm256_set1_ps(w[h * n_ctx + i]);
              acc[h][0] = _mm256_add_ps(acc[h][0], _mm256_mul_ps(wh, v0));
              acc[h][1] = _mm256_add_ps(acc[h][1], _mm256_mul_ps(wh, v1));
            }
        }
        pos += run.count;
      }
#pragma GCC unroll 4
      for (int h = 0; h < 4; ++h)
        if (h < heads) {
          const __m256 den = _mm256_set1_ps(denoms[g0 + h]);
          float* o = qg.out + (g0 + h) * hd + d;
          _mm256_storeu_ps(o, _mm256_div_ps(acc[h][0], den));
          if (blocks == 2)
            _mm256_storeu_ps(o + 8, _mm256_div_ps(acc[h][1], den));
        }
    }
  // Head sizes that are not a multiple of eight: the last columns as the
  // portable kernel computes them.
  if (hd8 < hd)
    for (int64_t g = 0; g < group; ++g)
      weighted_v_columns(cache, block_table, qg.first, qg.last, qg.kv_head,
                         qg.scores + g * n_ctx, hd8, hd - hd8, denoms[g],
                         qg.out + g * hd + hd8);
}

} // namespace

__attribute__((target("avx2"))) void
paged_attention_avx2(const float* q, const int32_t* positions, int64_t n_tokens,
                     const kv_pages& cache, const int32_t* block_table,
                     const attention_dims& dims, float* out) {
  for_each_query_group(q, positions, n_tokens, dims, out,
                       [&](const query_group& qg) {
                         attend_avx2(qg, cache, block_table, dims);
                       });
}

} // namespace volt::cpu::detail
