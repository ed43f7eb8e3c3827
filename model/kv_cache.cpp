#include "model/kv_cache.hpp"

namespace volt {

kv_cache::kv_cache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim,
                   int64_t page_size, int64_t num_pages)
  : n_layers_(n_layers), n_kv_heads_(n_kv_heads), head_dim_(head_dim),
    page_size_(page_size), num_pages_(num_pages) {
  auto floats = static_cast<size_t>(n_layers * num_pages * page_size
                                    * n_kv_heads * head_dim);
  k_.resize(floats);
  v_.resize(floats);
  free_.reserve(static_cast<size_t>(num_pages));
  // Hand out low page numbers first: easier to read in traces.
  for (auto p = static_cast<int32_t>(num_pages); p > 0; --p)
    free_.push_back(p - 1);
}

kv_pages kv_cache::layer(int64_t layer) {
  auto offset = static_cast<size_t>(layer * num_pages_ * page_size_
                                    * n_kv_heads_ * head_dim_);
  return kv_pages{k_.data() + offset, v_.data() + offset, num_pages_,
                  page_size_,         n_kv_heads_,        head_dim_};
}

int32_t kv_cache::allocate() {
  if (free_.empty())
    return -1;
  auto page = free_.back();
  free_.pop_back();
  return page;
}

void kv_cache::release(int32_t page) {
  free_.push_back(page);
}

bool sequence_pages::reserve(kv_cache& cache, int64_t n_tokens) {
  auto needed = cache.pages_for(n_tokens)
                - static_cast<int64_t>(block_table.size());
  if (needed <= 0)
    return true;
  if (needed > cache.free_pages())
    return false;
  for (int64_t i = 0; i < needed; ++i)
    block_table.push_back(cache.allocate());
  return true;
}

void sequence_pages::release(kv_cache& cache) {
  for (auto page : block_table)
    cache.release(page);
  block_table.clear();
}

} // namespace volt
