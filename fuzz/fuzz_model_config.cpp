// Fuzzes the reading of a checkpoint's config.json: the JSON parser
// (model/json.hpp) and parse_model_config (model/model_config.hpp). An
// accepted file must describe a model the engine can size (every documented
// check holds), and the config written back as config.json must read back the
// same.

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "model/json.hpp"
#include "model/model_config.hpp"

using namespace volt;

namespace {

const std::string source = "config.json";

void check_sizes(const model_config& c) {
  for (auto size :
       {c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers,
        c.num_attention_heads, c.num_key_value_heads, c.head_dim,
        c.num_local_experts, c.num_experts_per_tok, c.max_position_embeddings})
    VOLT_FUZZ_REQUIRE(size > 0 && size <= 2147483647,
                      "a size outside [1, 2^31): " + std::to_string(size));
  VOLT_FUZZ_REQUIRE(c.num_attention_heads % c.num_key_value_heads == 0,
                    "query heads not a multiple of key/value heads");
  VOLT_FUZZ_REQUIRE(c.num_experts_per_tok <= c.num_local_experts,
                    "top-k above the expert count");
  VOLT_FUZZ_REQUIRE(c.head_dim % 2 == 0, "odd head_dim");
  VOLT_FUZZ_REQUIRE(std::isfinite(c.rope_theta) && c.rope_theta > 0,
                    "rope_theta not a positive number");
  VOLT_FUZZ_REQUIRE(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0,
                    "rms_norm_eps not a positive number");
  VOLT_FUZZ_REQUIRE(c.sliding_window >= 0, "negative sliding_window");
  for (auto id : {c.bos_token_id, c.eos_token_id})
    VOLT_FUZZ_REQUIRE(id >= -1 && id < c.vocab_size,
                      "token id outside the vocabulary");
}

/// The config as a config.json in the newer layout (rope_parameters).
json::value to_config_json(const model_config& c) {
  json::value doc = {{"model_type", "mixtral"},
                     {"vocab_size", c.vocab_size},
                     {"hidden_size", c.hidden_size},
                     {"intermediate_size", c.intermediate_size},
                     {"num_hidden_layers", c.num_hidden_layers},
                     {"num_attention_heads", c.num_attention_heads},
                     {"num_key_value_heads", c.num_key_value_heads},
                     {"head_dim", c.head_dim},
                     {"num_local_experts", c.num_local_experts},
                     {"num_experts_per_tok", c.num_experts_per_tok},
                     {"max_position_embeddings", c.max_position_embeddings},
                     {"rope_parameters",
                      {{"rope_type", "default"}, {"rope_theta", c.rope_theta}}},
                     {"rms_norm_eps", c.rms_norm_eps},
                     {"tie_word_embeddings", c.tie_word_embeddings},
                     {"hidden_act", "silu"},
                     {"sliding_window", c.sliding_window}};
  if (c.bos_token_id >= 0)
    doc["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_id >= 0)
    doc["eos_token_id"] = c.eos_token_id;
  if (!c.torch_dtype.empty())
    doc["torch_dtype"] = c.torch_dtype;
  return doc;
}

bool same(const model_config& a, const model_config& b) {
  return a.vocab_size == b.vocab_size && a.hidden_size == b.hidden_size
         && a.intermediate_size == b.intermediate_size
         && a.num_hidden_layers == b.num_hidden_layers
         && a.num_attention_heads == b.num_attention_heads
         && a.num_key_value_heads == b.num_key_value_heads
         && a.head_dim == b.head_dim
         && a.num_local_experts == b.num_local_experts
         && a.num_experts_per_tok == b.num_experts_per_tok
         && a.max_position_embeddings == b.max_position_embeddings
         && a.rope_theta == b.rope_theta && a.rms_norm_eps == b.rms_norm_eps
         && a.tie_word_embeddings == b.tie_word_embeddings
         && a.sliding_window == b.sliding_window
         && a.bos_token_id == b.bos_token_id && a.eos_token_id == b.eos_token_id
         && a.torch_dtype == b.torch_dtype;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  auto doc = json::parse(text, source);
  if (!doc) {
    volt::fuzz::require_one_line_error(doc.error(),
                                       volt_errc::invalid_checkpoint, source);
    return 0;
  }
  // Whatever parsed must print (dump never throws) and read back equal.
  auto printed = json::dump(*doc);
  auto reparsed = json::parse(printed, source);
  VOLT_FUZZ_REQUIRE(reparsed && *reparsed == *doc,
                    "dumped JSON reads back different: "
                      + printed.substr(0, 200));
  auto cfg = parse_model_config(*doc, source);
  if (!cfg) {
    volt::fuzz::require_one_line_error(cfg.error(),
                                       volt_errc::invalid_checkpoint, source);
    return 0;
  }
  check_sizes(*cfg);
  auto written = json::dump(to_config_json(*cfg));
  auto doc2 = json::parse(written, source);
  VOLT_FUZZ_REQUIRE(static_cast<bool>(doc2),
                    "written config.json does not parse");
  auto again = parse_model_config(*doc2, source);
  VOLT_FUZZ_REQUIRE(static_cast<bool>(again), "written config.json is refused: "
                                                + describe(again.error()));
  VOLT_FUZZ_REQUIRE(same(*cfg, *again),
                    "config changed on the round trip: " + written);
  return 0;
}
