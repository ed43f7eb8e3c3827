#pragma once

// Test helpers that write checkpoint folders (config.json + safetensors) into
// temporary folders. Header-only so any test file can include it.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "base/error.hpp"
#include "model/checkpoint.hpp"
#include "model/dtype.hpp"
#include "model/json.hpp"
#include "model/model_config.hpp"
#include "model/safetensors.hpp"

namespace volt::test {

/// The tiny Mixtral fixture folder (config.json, model.safetensors,
/// reference.json).
inline std::string tiny_mixtral_dir() {
  return std::string{VOLT_TEST_DATA_DIR} + "/tiny-mixtral-a";
}

/// A fresh folder under /tmp, removed with everything in it on destruction.
class temp_dir {
public:
  temp_dir() {
    char tmpl[] = "/tmp/volt-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    path_ = tmpl;
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  /// Absolute path of the folder.
  const std::string& path() const {
    return path_;
  }

  /// Returns "<path>/<name>".
  std::string file(const std::string& name) const {
    return path_ + "/" + name;
  }

  /// Creates the sub-folder `name` (and parents) and returns its path.
  std::string subdir(const std::string& name) const {
    auto p = file(name);
    std::error_code ec;
    std::filesystem::create_directories(p, ec);
    return p;
  }

private:
  std::string path_;
};

/// Writes `text` to `path`; false on failure.
inline bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << text;
  return static_cast<bool>(out);
}

/// Reads the whole file `path` (empty on failure).
inline std::string read_text(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

/// Encodes `xs` as little-endian elements of `type` (F32, F16 or BF16, rounded
/// to nearest).
inline std::vector<uint8_t> float_bytes(const std::vector<float>& xs,
                                        dtype type = dtype::f32) {
  std::vector<uint8_t> out(xs.size() * dtype_size(type));
  for (size_t i = 0; i < xs.size(); ++i) {
    if (type == dtype::f32) {
      std::memcpy(out.data() + 4 * i, &xs[i], 4);
    } else {
      auto h = type == dtype::f16 ? f32_to_f16(xs[i]) : f32_to_bf16(xs[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

/// Decodes the bytes of a float tensor (F32, F16 or BF16) to floats.
inline std::vector<float> to_floats(dtype type, const uint8_t* data, size_t n) {
  std::vector<float> out(n);
  convert_to_f32(type, data, n, out.data());
  return out;
}

/// A tensor with float values stored as `type`.
inline tensor_to_write make_tensor(std::string name, std::vector<int64_t> shape,
                                   const std::vector<float>& values,
                                   dtype type = dtype::f32) {
  return tensor_to_write{std::move(name), type, std::move(shape),
                         float_bytes(values, type)};
}

/// Copies every tensor of `file` (bytes as stored).
inline std::vector<tensor_to_write> copy_tensors(const safetensors_file& file) {
  std::vector<tensor_to_write> out;
  for (auto& t : file.tensors())
    out.push_back(
      tensor_to_write{t.name, t.type, t.shape,
                      std::vector<uint8_t>(t.data, t.data + t.nbytes)});
  return out;
}

/// Copies every tensor of the checkpoint `dir`'s files, in file order (aborts
/// on error: the caller's checkpoint is a fixture that must open).
inline std::vector<tensor_to_write> copy_tensors(const std::string& dir) {
  auto ckpt = checkpoint::open(dir);
  if (!ckpt) {
    std::fprintf(stderr, "copy_tensors: %s\n", describe(ckpt.error()).c_str());
    std::abort();
  }
  std::vector<tensor_to_write> out;
  for (auto t : ckpt->tensors())
    out.push_back(
      tensor_to_write{t->name, t->type, t->shape,
                      std::vector<uint8_t>(t->data, t->data + t->nbytes)});
  return out;
}

/// Re-encodes every float tensor of `tensors` as `type` (round to nearest
/// even).
inline std::vector<tensor_to_write>
convert_tensors(std::vector<tensor_to_write> tensors, dtype type) {
  for (auto& t : tensors) {
    if (!is_float(t.type) || t.type == type)
      continue;
    auto n = t.bytes.size() / dtype_size(t.type);
    t.bytes = float_bytes(to_floats(t.type, t.bytes.data(), n), type);
    t.type = type;
  }
  return tensors;
}

/// Writes `dir`/config.json with `config_json` and `dir`/`file_name` with
/// `tensors`; creates `dir` if needed.
inline caf::error
write_checkpoint(const std::string& dir, const std::string& config_json,
                 const std::vector<tensor_to_write>& tensors,
                 const std::string& file_name = "model.safetensors") {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (!write_text(dir + "/config.json", config_json))
    return make_volt_error(volt_errc::internal,
                           dir + "/config.json: cannot write");
  return write_safetensors(dir + "/" + file_name, tensors);
}

/// The tiny fixture's config.json text and tensors, for tests that edit them
/// and write the result as new checkpoint folders.
struct fixture_copies {
  temp_dir tmp;
  std::string config_text = read_text(tiny_mixtral_dir() + "/config.json");
  std::vector<tensor_to_write> tensors = copy_tensors(tiny_mixtral_dir());

  /// Writes `config_text` and `ts` into `<tmp>/<name>` and returns the folder
  /// (aborts when it cannot: the test could not go on).
  std::string write(const std::string& name,
                    const std::vector<tensor_to_write>& ts) {
    auto dir = tmp.subdir(name);
    if (auto err = write_checkpoint(dir, config_text, ts)) {
      std::fprintf(stderr, "write_checkpoint: %s\n", describe(err).c_str());
      std::abort();
    }
    return dir;
  }
};

/// A Mixtral config of the given sizes; the rest as in the tiny fixture
/// (theta 1e4, eps 1e-5, context 1024, untied, no window, bos 1, eos 2).
inline model_config
small_model_config(int64_t vocab, int64_t hidden, int64_t ffn, int64_t layers,
                   int64_t heads, int64_t kv_heads, int64_t head_dim,
                   int64_t experts, int64_t top_k) {
  model_config cfg;
  cfg.vocab_size = vocab;
  cfg.hidden_size = hidden;
  cfg.intermediate_size = ffn;
  cfg.num_hidden_layers = layers;
  cfg.num_attention_heads = heads;
  cfg.num_key_value_heads = kv_heads;
  cfg.head_dim = head_dim;
  cfg.num_local_experts = experts;
  cfg.num_experts_per_tok = top_k;
  cfg.max_position_embeddings = 1024;
  cfg.rope_theta = 10000.0;
  cfg.rms_norm_eps = 1e-5;
  cfg.tie_word_embeddings = false;
  cfg.sliding_window = 0;
  cfg.bos_token_id = 1;
  cfg.eos_token_id = 2;
  cfg.torch_dtype = "float32";
  return cfg;
}

/// `cfg` as a Hugging Face config.json document (classic layout, top-level
/// rope_theta), for tests that edit it before writing.
inline json::value config_doc(const model_config& cfg) {
  json::value doc = {{"architectures", json::value::array({"MixtralForCausalLM"})},
                     {"model_type", "mixtral"},
                     {"vocab_size", cfg.vocab_size},
                     {"hidden_size", cfg.hidden_size},
                     {"intermediate_size", cfg.intermediate_size},
                     {"num_hidden_layers", cfg.num_hidden_layers},
                     {"num_attention_heads", cfg.num_attention_heads},
                     {"num_key_value_heads", cfg.num_key_value_heads}};
  if (cfg.head_dim > 0)
    doc["head_dim"] = cfg.head_dim;
  doc["num_local_experts"] = cfg.num_local_experts;
  doc["num_experts_per_tok"] = cfg.num_experts_per_tok;
  doc["max_position_embeddings"] = cfg.max_position_embeddings;
  doc["rope_theta"] = cfg.rope_theta;
  doc["rms_norm_eps"] = cfg.rms_norm_eps;
  doc["tie_word_embeddings"] = cfg.tie_word_embeddings;
  doc["sliding_window"] = nullptr;
  if (cfg.sliding_window > 0)
    doc["sliding_window"] = cfg.sliding_window;
  if (cfg.bos_token_id >= 0)
    doc["bos_token_id"] = cfg.bos_token_id;
  if (cfg.eos_token_id >= 0)
    doc["eos_token_id"] = cfg.eos_token_id;
  doc["torch_dtype"] = cfg.torch_dtype.empty() ? "float32" : cfg.torch_dtype;
  return doc;
}

/// Renders `cfg` as a Hugging Face config.json, indented as transformers
/// writes it.
inline std::string config_json(const model_config& cfg) {
  return config_doc(cfg).dump(2) + "\n";
}

/// Deterministic pseudo-random floats in [-scale, scale) (xorshift; identical
/// everywhere).
inline std::vector<float> random_floats(size_t n, uint64_t& state,
                                        float scale) {
  std::vector<float> out(n);
  for (auto& x : out) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    auto unit = static_cast<float>(state >> 40)
                / static_cast<float>(1ull << 24);
    x = (2.0f * unit - 1.0f) * scale;
  }
  return out;
}

/// Every tensor of a Mixtral model with config `cfg`: random weights in
/// [-scale, scale), norms near 1; lm_head omitted when tied. Lets tests build
/// checkpoints of any (odd) size.
inline std::vector<tensor_to_write>
random_mixtral_tensors(const model_config& cfg, uint64_t seed = 42,
                       float scale = 0.1f, dtype type = dtype::f32) {
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  std::vector<tensor_to_write> out;
  auto add = [&](std::string name, std::vector<int64_t> shape,
                 float offset = 0) {
    size_t n = 1;
    for (auto d : shape)
      n *= static_cast<size_t>(d);
    auto xs = random_floats(n, state, scale);
    for (auto& x : xs)
      x += offset;
    out.push_back(make_tensor(std::move(name), std::move(shape), xs, type));
  };
  auto h = cfg.hidden_size;
  auto q = cfg.num_attention_heads * cfg.head_dim;
  auto kv = cfg.num_key_value_heads * cfg.head_dim;
  add("model.embed_tokens.weight", {cfg.vocab_size, h});
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    add(layer_tensor_name(l, "input_layernorm.weight"), {h}, 1.0f);
    add(layer_tensor_name(l, "self_attn.q_proj.weight"), {q, h});
    add(layer_tensor_name(l, "self_attn.k_proj.weight"), {kv, h});
    add(layer_tensor_name(l, "self_attn.v_proj.weight"), {kv, h});
    add(layer_tensor_name(l, "self_attn.o_proj.weight"), {h, q});
    add(layer_tensor_name(l, "post_attention_layernorm.weight"), {h}, 1.0f);
    add(layer_tensor_name(l, "block_sparse_moe.gate.weight"),
        {cfg.num_local_experts, h});
    for (int64_t e = 0; e < cfg.num_local_experts; ++e) {
      add(expert_weight_name(l, e, "w1"), {cfg.intermediate_size, h});
      add(expert_weight_name(l, e, "w2"), {h, cfg.intermediate_size});
      add(expert_weight_name(l, e, "w3"), {cfg.intermediate_size, h});
    }
  }
  add("model.norm.weight", {h}, 1.0f);
  if (!cfg.tie_word_embeddings)
    add("lm_head.weight", {cfg.vocab_size, h});
  return out;
}

/// `tensors` less the one named `name` (a checkpoint with a hole in it).
inline std::vector<tensor_to_write>
without_tensor(std::vector<tensor_to_write> tensors, const std::string& name) {
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                               [&](const tensor_to_write& t) {
                                 return t.name == name;
                               }),
                tensors.end());
  return tensors;
}

} // namespace volt::test
