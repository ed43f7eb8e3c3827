#include "model/kv_cache.hpp"

#include "base/error.hpp"
#include "model/host_memory.hpp"

namespace volt {

kv_cache::kv_cache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim,
                   int64_t page_size, int64_t num_pages)
  : n_kv_heads_(n_kv_heads), head_dim_(head_dim),
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

int64_t kv_bytes_per_page(const model_config& model, int64_t page_size) {
  return int64_t{2} * model.num_hidden_layers * model.num_key_value_heads
         * model.head_dim * page_size * static_cast<int64_t>(sizeof(float));
}

caf::error check_pool_fits_host(int64_t num_pages, int64_t bytes_per_page,
                                const std::string& origin) {
  auto mem = available_host_memory();
  // In double: a hostile page count must not wrap the product.
  auto need = static_cast<double>(num_pages)
              * static_cast<double>(bytes_per_page);
  if (mem.available < 0 || need <= static_cast<double>(mem.available))
    return caf::none;
  return make_volt_error(volt_errc::invalid_config,
                         origin + ": the KV pool of " + std::to_string(num_pages)
                           + " pages needs " + render_size(need)
                           + " of host memory, but " + render_size(
                             static_cast<double>(mem.available))
                           + " are available (" + mem.source + ")");
}

} // namespace volt
