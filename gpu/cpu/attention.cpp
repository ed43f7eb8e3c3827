// Paged grouped-query attention on the CPU.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "gpu/cpu/cpu_ops.hpp"
#include "gpu/cpu/dot.hpp"

namespace volt::cpu {

namespace {

/// Address of the K (or V) row of `head` at sequence position `pos`.
const float* slot(const float* base, const kv_pages& cache,
                  const int32_t* block_table, int64_t pos, int64_t head) {
  auto page = block_table[pos / cache.page_size];
  auto offset = pos % cache.page_size;
  return base + page * cache.page_stride() + offset * cache.token_stride()
         + head * cache.head_dim;
}

} // namespace

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

void paged_attention(const float* q, const int32_t* positions, int64_t n_tokens,
                     const kv_pages& cache, const int32_t* block_table,
                     const attention_dims& dims, float* out) {
  const int64_t hd = dims.head_dim;
  const int64_t group = dims.n_heads / dims.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> scores;
  std::vector<float> acc(static_cast<size_t>(hd));
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t last = positions[t];
    const int64_t first = dims.sliding_window > 0
                            ? std::max<int64_t>(0,
                                                last - dims.sliding_window + 1)
                            : 0;
    scores.resize(static_cast<size_t>(last - first + 1));
    for (int64_t h = 0; h < dims.n_heads; ++h) {
      const float* qv = q + (t * dims.n_heads + h) * hd;
      const int64_t kv_head = h / group;
      float max_score = -INFINITY;
      for (int64_t p = first; p <= last; ++p) {
        auto s = dot(qv, slot(cache.k, cache, block_table, p, kv_head), hd)
                 * scale;
        scores[p - first] = s;
        max_score = std::max(max_score, s);
      }
      float denom = 0;
      for (auto& s : scores) {
        s = std::exp(s - max_score);
        denom += s;
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t p = first; p <= last; ++p) {
        const float* vv = slot(cache.v, cache, block_table, p, kv_head);
        const float w = scores[p - first];
        for (int64_t i = 0; i < hd; ++i)
          acc[i] += w * vv[i];
      }
      float* dst = out + (t * dims.n_heads + h) * hd;
      for (int64_t i = 0; i < hd; ++i)
        dst[i] = acc[i] / denom;
    }
  }
}

} // namespace volt::cpu
