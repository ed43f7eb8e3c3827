#include "model/quantize.hpp"

#include <algorithm>

#include "base/error.hpp"
#include "gpu/cpu/quant.hpp"

namespace volt {

std::string to_string(weight_quantization x) {
  return x == weight_quantization::int8 ? "int8" : "none";
}

caf::expected<weight_quantization> parse_quantization(const std::string& text) {
  if (text == "none")
    return weight_quantization::none;
  if (text == "int8")
    return weight_quantization::int8;
  return make_volt_error(volt_errc::invalid_config,
                         "unknown quantization '" + text
                           + "' (expected none or int8)");
}

int8_matrix int8_matrix::quantize(const f32_tensor& w) {
  int8_matrix m;
  m.rows = w.shape.empty() ? 0 : w.shape[0];
  m.cols = m.rows == 0 ? 0 : w.numel() / m.rows;
  m.q.resize(static_cast<size_t>(m.rows * m.cols));
  m.scales.resize(static_cast<size_t>(m.rows));
  cpu::quantize_int8_rows(w.data, m.rows, m.cols, m.q.data(), m.scales.data());
  return m;
}

std::shared_ptr<const int8_expert_weights>
int8_expert_weights::quantize(const expert_weights& w) {
  auto result = std::make_shared<int8_expert_weights>();
  result->ids_ = w.ids();
  result->n_layers_ = w.config().num_hidden_layers;
  for (int64_t l = 0; l < result->n_layers_; ++l)
    for (auto id : result->ids_) {
      const auto* f = w.find(l, id);
      result->by_layer_slot_.push_back({int8_matrix::quantize(f->w1),
                                        int8_matrix::quantize(f->w3),
                                        int8_matrix::quantize(f->w2)});
    }
  return result;
}

const int8_expert_ffn* int8_expert_weights::find(int64_t layer,
                                                 uint32_t id) const {
  auto it = std::lower_bound(ids_.begin(), ids_.end(), id);
  if (layer < 0 || layer >= n_layers_ || it == ids_.end() || *it != id)
    return nullptr;
  return &by_layer_slot_[static_cast<size_t>(layer) * ids_.size()
                         + static_cast<size_t>(it - ids_.begin())];
}

size_t int8_expert_weights::bytes() const {
  size_t n = 0;
  for (const auto& e : by_layer_slot_)
    n += e.w1.bytes() + e.w3.bytes() + e.w2.bytes();
  return n;
}

} // namespace volt
