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
}

kv_pages kv_cache::layer(int64_t layer) {
  auto offset = static_cast<size_t>(layer * num_pages_ * page_size_
                                    * n_kv_heads_ * head_dim_);
  return kv_pages{k_.data() + offset, v_.data() + offset, num_pages_,
                  page_size_,         n_kv_heads_,        head_dim_};
}

} // namespace volt
