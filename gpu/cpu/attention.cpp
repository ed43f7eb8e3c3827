// Paged grouped-query attention on the CPU.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "gpu/cpu/cpu_ops.hpp"
#include "gpu/cpu/dot.hpp"
#include "gpu/cpu/fast_exp.hpp"

namespace volt::cpu {

namespace {

/// Positions [pos, pos + count) that lie in one page, and the offset of the
/// first one's row of `head` in the K (or V) storage.
struct page_run {
  int64_t offset = 0;
  int64_t count = 0;
};

/// The run of positions from `pos` (at most up to `last`) in `pos`'s page:
/// one division per page rather than per position. Always inlined so that
/// the AVX2 clone of paged_attention keeps its loops in AVX2.
[[gnu::always_inline]] inline page_run
run_at(const kv_pages& cache, const int32_t* block_table, int64_t pos,
       int64_t last, int64_t head) {
  auto page = block_table[pos / cache.page_size];
  auto in_page = pos % cache.page_size;
  return {page * cache.page_stride() + in_page * cache.token_stride()
            + head * cache.head_dim,
          std::min(cache.page_size - in_page, last - pos + 1)};
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

// AVX2 and baseline clones (results alike): the dot products over K rows are
// most of the work once contexts grow. The query heads of one KV head are
// handled together so that each K and V row is read once per token.
__attribute__((target_clones("avx2", "default"))) void
paged_attention(const float* q, const int32_t* positions, int64_t n_tokens,
                const kv_pages& cache, const int32_t* block_table,
                const attention_dims& dims, float* out) {
  const int64_t hd = dims.head_dim;
  const int64_t group = dims.n_heads / dims.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Per thread: the engine runs parts of a batch on several threads.
  thread_local std::vector<float> scores; // [group, context]
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t last = positions[t];
    const int64_t first = dims.sliding_window > 0
                            ? std::max<int64_t>(0,
                                                last - dims.sliding_window + 1)
                            : 0;
    const int64_t n_ctx = last - first + 1;
    scores.resize(static_cast<size_t>(group * n_ctx));
    for (int64_t kv_head = 0; kv_head < dims.n_kv_heads; ++kv_head) {
      const float* qv = q + (t * dims.n_heads + kv_head * group) * hd;
      const auto stride = cache.token_stride();
      for (int64_t pos = first; pos <= last;) {
        auto run = run_at(cache, block_table, pos, last, kv_head);
        const float* k_row = cache.k + run.offset;
        for (int64_t i = 0; i < run.count; ++i, k_row += stride)
          for (int64_t g = 0; g < group; ++g)
            scores[g * n_ctx + pos + i - first] = dot(qv + g * hd, k_row, hd)
                                                  * scale;
        pos += run.count;
      }
      for (int64_t g = 0; g < group; ++g) {
        float* sc = scores.data() + g * n_ctx;
        float max_score = -INFINITY;
        for (int64_t i = 0; i < n_ctx; ++i)
          max_score = std::max(max_score, sc[i]);
        for (int64_t i = 0; i < n_ctx; ++i)
          sc[i] = exp_nonpositive(sc[i] - max_score);
        float denom = 0;
        for (int64_t i = 0; i < n_ctx; ++i)
          denom += sc[i];
        float* dst = out + (t * dims.n_heads + kv_head * group + g) * hd;
        // Eight output elements at a time in registers; each element sums
        // its positions in ascending order.
        for (int64_t d = 0; d < hd; d += 8) {
          const int64_t width = std::min<int64_t>(8, hd - d);
          float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
          for (int64_t pos = first; pos <= last;) {
            auto run = run_at(cache, block_table, pos, last, kv_head);
            const float* v_row = cache.v + run.offset + d;
            const float* w = sc + (pos - first);
            if (width == 8) {
              for (int64_t i = 0; i < run.count; ++i, v_row += stride)
                for (int k = 0; k < 8; ++k)
                  acc[k] += w[i] * v_row[k];
            } else {
              for (int64_t i = 0; i < run.count; ++i, v_row += stride)
                for (int64_t k = 0; k < width; ++k)
                  acc[k] += w[i] * v_row[k];
            }
            pos += run.count;
          }
          for (int64_t k = 0; k < width; ++k)
            dst[d + k] = acc[k] / denom;
        }
      }
    }
  }
}

} // namespace volt::cpu
