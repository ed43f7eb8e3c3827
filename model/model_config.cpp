#include "model/model_config.hpp"

#include <vector>

#include "base/error.hpp"
#include "model/file_io.hpp"
#include "model/json.hpp"

namespace volt {

namespace {

/// Sizes above this are surely a typo, and keeping them small keeps shape
/// products in int64.
constexpr int64_t max_size = 2147483647;

/// Reads typed keys of config.json; the first failure is kept in `err`.
class config_reader {
public:
  config_reader(const json::value& doc, const std::string& source)
    : doc_(doc), source_(source) {}

  caf::error fail(const std::string& what) {
    if (!err)
      err = make_volt_error(volt_errc::invalid_checkpoint,
                            source_ + ": " + what);
    return err;
  }

  /// Renders a value for an error message, cut short so the message stays one
  /// line.
  static std::string show(const json::value& x) {
    auto text = json::dump(x);
    if (text.size() > 40)
      text = text.substr(0, 37) + "...";
    return text;
  }

  /// The value of `key`, treating null like absence.
  const json::value* get(const char* key) const {
    auto x = json::find(doc_, key);
    return x && !x->is_null() ? x : nullptr;
  }

  bool positive(const json::value& x, const std::string& key, int64_t& out) {
    auto n = json::to_int64(x);
    if (!n || *n <= 0 || *n > max_size) {
      fail("key '" + key + "' must be a positive integer (at most "
           + std::to_string(max_size) + "), got " + show(x));
      return false;
    }
    out = *n;
    return true;
  }

  void required(const char* key, int64_t& out) {
    if (err)
      return;
    auto x = get(key);
    if (!x) {
      fail(std::string{"missing key '"} + key + "'");
      return;
    }
    positive(*x, key, out);
  }

  void optional(const char* key, int64_t& out, int64_t fallback) {
    if (err)
      return;
    auto x = get(key);
    if (!x)
      out = fallback;
    else
      positive(*x, key, out);
  }

  void positive_double(const json::value* x, const std::string& key,
                       double& out) {
    if (err || !x)
      return;
    if (!x->is_number() || !(x->get<double>() > 0)) {
      fail("key '" + key + "' must be a positive number, got " + show(*x));
      return;
    }
    out = x->get<double>();
  }

  /// Token ids: an integer, a list (the first counts; every one must be a
  /// token), or null/absent (-1). Each must lie in [0, vocab): an id outside
  /// the vocabulary can never be generated, so generation would never stop
  /// at it.
  void token_id(const char* key, int64_t vocab, int64_t& out) {
    if (err)
      return;
    out = -1;
    auto x = get(key);
    if (!x)
      return;
    std::vector<const json::value*> ids;
    if (x->is_array())
      for (auto& element : *x)
        ids.push_back(&element);
    else
      ids.push_back(x);
    for (auto* element : ids) {
      auto id = json::to_int64(*element);
      if (!id || *id < 0) {
        fail(std::string{"key '"} + key
             + "' must be a non-negative integer, got " + show(*element));
        return;
      }
      if (*id >= vocab) {
        fail(std::string{"key '"} + key + "': token id " + std::to_string(*id)
             + " is outside the vocabulary [0, " + std::to_string(vocab)
             + ") of vocab_size");
        return;
      }
      if (out < 0)
        out = *id;
    }
  }

  caf::error err;

private:
  const json::value& doc_;
  const std::string& source_;
};

bool contains_string(const json::value& xs, const std::string& what) {
  for (auto& x : xs)
    if (x.is_string() && x.get_ref<const std::string&>() == what)
      return true;
  return false;
}

/// Checks that the file describes a Mixtral model; lenient when nothing says
/// otherwise.
caf::error check_architecture(config_reader& rd) {
  if (auto type = rd.get("model_type")) {
    if (!type->is_string())
      return rd.fail("key 'model_type' must be a string, got "
                     + config_reader::show(*type));
    auto& name = type->get_ref<const std::string&>();
    if (name != "mixtral")
      return rd.fail("model_type '" + name
                     + "' is not supported (expected 'mixtral')");
    return caf::none;
  }
  if (auto archs = rd.get("architectures")) {
    if (!archs->is_array() || !contains_string(*archs, "MixtralForCausalLM"))
      return rd.fail("architectures " + config_reader::show(*archs)
                     + " do not include MixtralForCausalLM");
  }
  return caf::none;
}

/// RoPE: `rope_parameters` (newer transformers) wins over top-level
/// `rope_theta`; any scaling scheme is refused because silently ignoring it
/// would give wrong logits.
caf::error read_rope(config_reader& rd, model_config& cfg) {
  if (auto params = rd.get("rope_parameters")) {
    if (!params->is_object())
      return rd.fail("key 'rope_parameters' must be an object, got "
                     + config_reader::show(*params));
    if (auto type = json::find(*params, "rope_type");
        type && !type->is_null()) {
      if (*type != "default")
        return rd.fail("rope_parameters.rope_type " + config_reader::show(*type)
                       + " is not supported (only 'default')");
    }
    auto theta = json::find(*params, "rope_theta");
    if (theta && !theta->is_null()) {
      rd.positive_double(theta, "rope_parameters.rope_theta", cfg.rope_theta);
      return rd.err;
    }
  }
  if (auto scaling = rd.get("rope_scaling")) {
    auto type = json::find(*scaling, "rope_type");
    if (!type)
      type = json::find(*scaling, "type");
    if (!type || *type != "default")
      return rd.fail("rope_scaling " + config_reader::show(*scaling)
                     + " is not supported (only 'default')");
  }
  rd.positive_double(rd.get("rope_theta"), "rope_theta", cfg.rope_theta);
  return rd.err;
}

} // namespace

caf::expected<model_config> parse_model_config(const json::value& doc,
                                               const std::string& source) {
  config_reader rd{doc, source};
  if (!doc.is_object())
    return rd.fail(std::string{"top level is a JSON "}
                   + doc.type_name() + ", not an object");
  if (auto err = check_architecture(rd))
    return err;
  model_config cfg;
  rd.required("vocab_size", cfg.vocab_size);
  rd.required("hidden_size", cfg.hidden_size);
  rd.required("intermediate_size", cfg.intermediate_size);
  rd.required("num_hidden_layers", cfg.num_hidden_layers);
  rd.required("num_attention_heads", cfg.num_attention_heads);
  rd.optional("num_key_value_heads", cfg.num_key_value_heads,
              cfg.num_attention_heads);
  rd.required("num_local_experts", cfg.num_local_experts);
  rd.required("num_experts_per_tok", cfg.num_experts_per_tok);
  rd.optional("max_position_embeddings", cfg.max_position_embeddings, 131072);
  rd.optional("head_dim", cfg.head_dim, 0);
  rd.positive_double(rd.get("rms_norm_eps"), "rms_norm_eps", cfg.rms_norm_eps);
  rd.token_id("bos_token_id", cfg.vocab_size, cfg.bos_token_id);
  rd.token_id("eos_token_id", cfg.vocab_size, cfg.eos_token_id);
  if (rd.err)
    return rd.err;
  // The experts compute w2(silu(w1 x) * w3 x); another activation would give
  // wrong logits without a word.
  if (auto act = rd.get("hidden_act");
      act && !(act->is_string() && act->get_ref<const std::string&>() == "silu"))
    return rd.fail("hidden_act " + config_reader::show(*act)
                   + " is not supported (the experts compute SwiGLU with "
                     "\"silu\")");
  if (auto err = read_rope(rd, cfg))
    return err;
  if (auto x = rd.get("tie_word_embeddings")) {
    if (!x->is_boolean())
      return rd.fail("key 'tie_word_embeddings' must be true or false, got "
                     + config_reader::show(*x));
    cfg.tie_word_embeddings = x->get<bool>();
  }
  if (auto x = rd.get("sliding_window")) {
    auto window = json::to_int64(*x);
    if (!window || *window < 0)
      return rd.fail(
        "key 'sliding_window' must be null or a non-negative integer, got "
        + config_reader::show(*x));
    cfg.sliding_window = *window;
  }
  for (auto key : {"torch_dtype", "dtype"}) {
    if (auto x = rd.get(key)) {
      if (!x->is_string())
        return rd.fail(std::string{"key '"} + key + "' must be a string, got "
                       + config_reader::show(*x));
      cfg.torch_dtype = x->get<std::string>();
      break;
    }
  }
  auto num = [](int64_t x) { return std::to_string(x); };
  if (cfg.head_dim == 0) {
    if (cfg.hidden_size % cfg.num_attention_heads != 0)
      return rd.fail("hidden_size " + num(cfg.hidden_size)
                     + " is not divisible by num_attention_heads "
                     + num(cfg.num_attention_heads)
                     + " and head_dim is not given");
    cfg.head_dim = cfg.hidden_size / cfg.num_attention_heads;
  }
  if (cfg.num_attention_heads % cfg.num_key_value_heads != 0)
    return rd.fail("num_attention_heads " + num(cfg.num_attention_heads)
                   + " is not a multiple of num_key_value_heads "
                   + num(cfg.num_key_value_heads));
  if (cfg.num_experts_per_tok > cfg.num_local_experts)
    return rd.fail("num_experts_per_tok " + num(cfg.num_experts_per_tok)
                   + " exceeds num_local_experts "
                   + num(cfg.num_local_experts));
  if (cfg.head_dim % 2 != 0)
    return rd.fail("head_dim " + num(cfg.head_dim)
                   + " must be even (RoPE rotates pairs)");
  return cfg;
}

caf::expected<model_config> read_model_config(const std::string& dir) {
  auto path = join_path(dir, "config.json");
  auto doc = json::parse_file(path);
  if (!doc)
    return doc.error();
  return parse_model_config(*doc, path);
}

} // namespace volt
