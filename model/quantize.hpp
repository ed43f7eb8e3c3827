#pragma once

// INT8 weight-only quantisation of expert weights at load time
// (`[model] quantization = "int8"`): every matrix per output channel,
// symmetric, fp32 scales (gpu/cpu/quant.hpp has the arithmetic). Expert
// weights take 1 byte per element plus 4 bytes per row instead of bf16's 2.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "caf/expected.hpp"
#include "model/mixtral.hpp"

namespace volt {

/// How expert weights are stored for compute.
enum class weight_quantization {
  /// As loaded (bf16 on the GPU).
  none,
  /// Per-output-channel symmetric int8, fp32 scales.
  int8,
};

/// "none" or "int8".
std::string to_string(weight_quantization x);

/// Parses "none" or "int8"; the error names the text.
caf::expected<weight_quantization> parse_quantization(const std::string& text);

/// One [rows, cols] matrix quantised per row.
struct int8_matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<int8_t> q; // [rows, cols]
  std::vector<float> scales; // [rows]

  /// Quantises a float32 matrix.
  static int8_matrix quantize(const f32_tensor& w);

  /// Bytes held (values and scales).
  size_t bytes() const {
    return q.size() + sizeof(float) * scales.size();
  }
};

/// One expert's FFN in int8.
struct int8_expert_ffn {
  int8_matrix w1; // [ffn, hidden]
  int8_matrix w3; // [ffn, hidden]
  int8_matrix w2; // [hidden, ffn]
};

/// Int8 copies of the experts an `expert_weights` hosts, for every layer, in
/// the same (layer, hosted slot) order.
class int8_expert_weights {
public:
  /// Quantises every hosted expert of every layer.
  static std::shared_ptr<const int8_expert_weights>
  quantize(const expert_weights& w);

  /// The int8 weights of expert `id` in `layer`, or nullptr if not hosted.
  const int8_expert_ffn* find(int64_t layer, uint32_t id) const;

  /// Bytes of every quantised expert (values and scales).
  size_t bytes() const;

private:
  std::vector<uint32_t> ids_;
  int64_t n_layers_ = 0;
  std::vector<int8_expert_ffn> by_layer_slot_; // [n_layers, ids_.size()]
};

} // namespace volt
