#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "caf/error.hpp"
#include "gpu/ops.hpp"
#include "model/model_config.hpp"

namespace volt {

/// The float storage of a fixed pool of KV pages for every layer of a model.
/// A page holds `page_size` token slots of K and V for all KV
/// heads, in the layout of `kv_pages`; page p of every layer belongs to the
/// same sequence, so one page table serves all layers. Which page belongs to
/// whom (sharing, copy-on-write, eviction) is the scheduler's business
/// (model/page_table.hpp, engine/scheduler.hpp). The CPU executor owns this
/// storage; the CUDA executor keeps its bf16 pages in device memory.
class kv_cache {
public:
  /// Creates `num_pages` pages for `n_layers` layers. Memory is reserved up
  /// front so that running out shows at start, not mid-request.
  kv_cache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim,
           int64_t page_size, int64_t num_pages);

  /// Returns the storage view of `layer`.
  kv_pages layer(int64_t layer);

  int64_t num_pages() const {
    return num_pages_;
  }

  int64_t page_size() const {
    return page_size_;
  }

  /// Pages needed to hold `n_tokens` tokens.
  int64_t pages_for(int64_t n_tokens) const {
    return (n_tokens + page_size_ - 1) / page_size_;
  }

  /// Bytes of K and V storage for all layers.
  size_t bytes() const {
    return sizeof(float) * (k_.size() + v_.size());
  }

private:
  int64_t n_kv_heads_;
  int64_t head_dim_;
  int64_t page_size_;
  int64_t num_pages_;
  std::vector<float>
    k_; // [n_layers, num_pages, page_size, n_kv_heads, head_dim]
  std::vector<float> v_; // same shape as k_
};

/// Bytes of one page of `kv_cache` for `model`: K and V of every layer, in
/// float32.
int64_t kv_bytes_per_page(const model_config& model, int64_t page_size);

/// Checks that a KV pool of `num_pages` pages, each taking `bytes_per_page`
/// bytes of host memory (its K/V storage when on the host, and its page-table
/// record), fits in the memory available now. Otherwise an invalid_config
/// error naming what sized the pool (`origin`, e.g. "node.toml: [kv_cache]
/// num_pages = N"), what it needs and what is available: a pool that
/// cannot be had must stop the node before it reports ready.
caf::error check_pool_fits_host(int64_t num_pages, int64_t bytes_per_page,
                                const std::string& origin);

} // namespace volt
