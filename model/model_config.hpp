#pragma once

#include <cstdint>
#include <string>

#include "caf/expected.hpp"

#include "model/json_fwd.hpp"

namespace volt {

/// Hyper-parameters of a Mixtral-architecture model, from Hugging Face
/// config.json.
struct model_config {
  /// Rows of embed_tokens and lm_head. Required.
  int64_t vocab_size = 0;
  /// Width of the residual stream. Required.
  int64_t hidden_size = 0;
  /// Width of each expert's SwiGLU (w1/w3 rows). Required.
  int64_t intermediate_size = 0;
  /// Number of decoder layers. Required.
  int64_t num_hidden_layers = 0;
  /// Query heads. Required.
  int64_t num_attention_heads = 0;
  /// Key/value heads (grouped-query attention). Default: num_attention_heads.
  int64_t num_key_value_heads = 0;
  /// Width of one head. Default (absent or null): hidden_size /
  /// num_attention_heads.
  int64_t head_dim = 0;
  /// Experts per layer. Required.
  int64_t num_local_experts = 0;
  /// Experts each token is routed to (top-k). Required.
  int64_t num_experts_per_tok = 0;
  /// Longest sequence the model was trained for. Default: 131072 (transformers'
  /// default).
  int64_t max_position_embeddings = 0;
  /// RoPE base. Default: 1e6 (transformers' MixtralConfig default).
  double rope_theta = 1e6;
  /// Epsilon of RMSNorm. Default: 1e-5.
  double rms_norm_eps = 1e-5;
  /// Whether lm_head shares embed_tokens' weight. Default: false.
  bool tie_word_embeddings = false;
  /// Sliding attention window; 0 = none (null or absent).
  int64_t sliding_window = 0;
  /// Begin-of-sequence token; -1 when absent.
  int64_t bos_token_id = -1;
  /// End-of-sequence token (the first one if config.json lists several); -1
  /// when absent.
  int64_t eos_token_id = -1;
  /// Stored weight type as written ("float32", "bfloat16", ...); from
  /// `torch_dtype` or the newer `dtype` key; empty when absent.
  std::string torch_dtype;
};

/// Reads `<dir>/config.json` (see `parse_model_config`).
caf::expected<model_config> read_model_config(const std::string& dir);

/// Builds a config from a parsed config.json; `source` names the file in
/// errors. Accepts the classic layout (top-level `rope_theta`) and the newer
/// one (`rope_parameters.rope_theta`, `head_dim: null`); rejects model types
/// other than Mixtral, missing or non-positive sizes, inconsistent head counts,
/// top-k above the expert count, odd head_dim, RoPE scaling (which this
/// engine does not implement), a hidden_act other than "silu", and bos / eos
/// token ids outside the vocabulary. Errors are one line naming `source` and
/// the key.
caf::expected<model_config> parse_model_config(const json::value& doc,
                                               const std::string& source);

} // namespace volt
