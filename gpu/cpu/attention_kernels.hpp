#pragma once

// The kernels behind cpu::paged_attention (gpu/cpu/cpu_ops.hpp), exposed so
// that the tests can check that they agree bit for bit. Both compute, per
// query head: scores dot(q, k) · scale (`dot`'s order), their maximum (taken
// as maxps takes it), e^(score - max) (exp_nonpositive), the denominator in
// `sum8`'s order, and each output element as its positions' weighted V rows
// summed in ascending position order, divided by the denominator.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "gpu/ops.hpp"

namespace volt::cpu::detail {

/// Positions [pos, pos + count) that lie in one page, and the offset of the
/// first one's row of `head` in the K (or V) storage.
struct page_run {
  int64_t offset = 0;
  int64_t count = 0;
};

/// The run of positions from `pos` (at most up to `last`) in `pos`'s page:
/// one division per page rather than per position.
[[gnu::always_inline]] inline page_run
run_at(const kv_pages& cache, const int32_t* block_table, int64_t pos,
       int64_t last, int64_t head) {
  auto page = block_table[pos / cache.page_size];
  auto in_page = pos % cache.page_size;
  return {page * cache.page_stride() + in_page * cache.token_stride()
            + head * cache.head_dim,
          std::min(cache.page_size - in_page, last - pos + 1)};
}

/// The first position a query at `last` attends to (the sliding window's).
inline int64_t first_attended(int64_t last, const attention_dims& dims) {
  return dims.sliding_window > 0
           ? std::max<int64_t>(0, last - dims.sliding_window + 1)
           : 0;
}

/// The query heads of one token that share a KV head, and their context.
struct query_group {
  const float* q = nullptr; // [group, head_dim]
  float* out = nullptr; // [group, head_dim]
  int64_t kv_head = 0;
  int64_t first = 0; // attended positions: [first, last]
  int64_t last = 0;
  float* scores = nullptr; // [group, n_ctx()], scratch

  int64_t n_ctx() const {
    return last - first + 1;
  }
};

/// Calls `attend(group)` for each token and KV head of a paged_attention call:
/// the loop both kernels share. Score scratch is per thread, as the engine
/// runs parts of a batch on several threads.
template <class Attend>
void for_each_query_group(const float* q, const int32_t* positions,
                          int64_t n_tokens, const attention_dims& dims,
                          float* out, Attend&& attend) {
  const int64_t hd = dims.head_dim;
  const int64_t group = dims.n_heads / dims.n_kv_heads;
  thread_local std::vector<float> scores;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t last = positions[t];
    const int64_t first = first_attended(last, dims);
    scores.resize(static_cast<size_t>(group * (last - first + 1)));
    for (int64_t kv_head = 0; kv_head < dims.n_kv_heads; ++kv_head) {
      const int64_t offset = (t * dims.n_heads + kv_head * group) * hd;
      attend(query_group{q + offset, out + offset, kv_head, first, last,
                         scores.data()});
    }
  }
}

/// dst[k] = (Σ w[pos - first] · V[pos][d + k]) / denom for k < width ≤ 8,
/// summed in ascending position order, for one head reading KV head
/// `kv_head`: all of the portable kernel's V sums, and the AVX2 kernel's for
/// the last columns of a head size that is not a multiple of eight.
[[gnu::always_inline]] inline void
weighted_v_columns(const kv_pages& cache, const int32_t* block_table,
                   int64_t first, int64_t last, int64_t kv_head, const float* w,
                   int64_t d, int64_t width, float denom, float* dst) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t pos = first; pos <= last;) {
    auto run = run_at(cache, block_table, pos, last, kv_head);
    const float* v_row = cache.v + run.offset + d;
    const float* wr = w + (pos - first);
    for (int64_t r = 0; r < run.count; ++r, v_row += cache.token_stride())
      for (int64_t k = 0; k < width; ++k)
        acc[k] += wr[r] * v_row[k];
    pos += run.count;
  }
  for (int64_t k = 0; k < width; ++k)
    dst[k] = acc[k] / denom;
}

/// Plain C++; runs on any x86-64 CPU. Arguments as paged_attention.
void paged_attention_portable(const float* q, const int32_t* positions,
                              int64_t n_tokens, const kv_pages& cache,
                              const int32_t* block_table,
                              const attention_dims& dims, float* out);

/// AVX2 intrinsics, same results as paged_attention_portable to the bit. Call
/// only where avx2_available() (gpu/cpu/matmul_kernels.hpp).
void paged_attention_avx2(const float* q, const int32_t* positions,
                          int64_t n_tokens, const kv_pages& cache,
                          const int32_t* block_table,
                          const attention_dims& dims, float* out);

} // namespace volt::cpu::detail
