// Paged grouped-query attention on the CPU: the KV write, the portable
// kernel (any x86-64 CPU, and the reference the AVX2 kernel in
// attention_avx2.cpp must equal bit for bit), and the run-time choice.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "gpu/cpu/attention_kernels.hpp"
#include "gpu/cpu/cpu_ops.hpp"
#include "gpu/cpu/dot.hpp"
#include "gpu/cpu/fast_exp.hpp"
#include "gpu/cpu/matmul_kernels.hpp"

namespace volt::cpu {

void kv_write(const kv_pages& cache, const int32_t* block_table,
              const int32_t* positions, int64_t n_tokens, const float* k,
              const float* v) {
  const auto row = cache.token_stride();
  const auto bytes = sizeof(float) * static_cast<size_t>(row);
  for (int64_t t = 0; t < n_tokens; ++t) {
    auto page = block_table[positions[t] / cache.page_size];
    auto offset = positions[t] % cache.page_size;
    auto dst = page * cache.page_stride() + offset * row;
    std::memcpy(cache.k + dst, k + t * row, bytes);
    std::memcpy(cache.v + dst, v + t * row, bytes);
  }
}

namespace detail {

namespace {

/// One query group the plain way: `dot` per score, then per head the maximum,
/// exponentials, denominator and V sums.
void attend_portable(const query_group& qg, const kv_pages& cache,
                     const int32_t* block_table, const attention_dims& dims) {
  const int64_t hd = dims.head_dim;
  const int64_t group = dims.n_heads / dims.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t n_ctx = qg.n_ctx();
  for (int64_t pos = qg.first; pos <= qg.last;) {
    auto run = run_at(cache, block_table, pos, qg.last, qg.kv_head);
    const float* k_row = cache.k + run.offset;
    for (int64_t i = 0; i < run.count; ++i, k_row += cache.token_stride())
      for (int64_t g = 0; g < group; ++g)
        qg.scores[g * n_ctx + pos + i - qg.first]
          = dot(qg.q + g * hd, k_row, hd) * scale;
    pos += run.count;
  }
  for (int64_t g = 0; g < group; ++g) {
    float* sc = qg.scores + g * n_ctx;
    // Eight running maxima, as the AVX2 kernel takes them.
    float lanes[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                      -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int64_t i = 0;
    for (; i + 8 <= n_ctx; i += 8)
      for (int j = 0; j < 8; ++j)
        lanes[j] = max_as_maxps(sc[i + j], lanes[j]);
    const float max_score = max_of_lanes(lanes, sc + i, n_ctx - i);
    for (i = 0; i < n_ctx; ++i)
      sc[i] = exp_nonpositive(sc[i] - max_score);
    const float denom = sum8(sc, n_ctx);
    // Eight output elements at a time in registers.
    for (int64_t d = 0; d < hd; d += 8)
      weighted_v_columns(cache, block_table, qg.first, qg.last, qg.kv_head, sc,
                         d, std::min<int64_t>(8, hd - d), denom,
                         qg.out + g * hd + d);
  }
}

} // namespace

void paged_attention_portable(const float* q, const int32_t* positions,
                              int64_t n_tokens, const kv_pages& cache,
                              const int32_t* block_table,
                              const attention_dims& dims, float* out) {
  for_each_query_group(q, positions, n_tokens, dims, out,
                       [&](const query_group& qg) {
                         attend_portable(qg, cache, block_table, dims);
                       });
}

} // namespace detail

// Every node picks its kernel at run time and both round alike.
void paged_attention(const float* q, const int32_t* positions, int64_t n_tokens,
                     const kv_pages& cache, const int32_t* block_table,
                     const attention_dims& dims, float* out) {
  if (detail::avx2_available())
    detail::paged_attention_avx2(q, positions, n_tokens, cache, block_table,
                                 dims, out);
  else
    detail::paged_attention_portable(q, positions, n_tokens, cache, block_table,
                                     dims, out);
}

} // namespace volt::cpu
