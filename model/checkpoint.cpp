#include "model/checkpoint.hpp"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <unordered_set>

#include "base/error.hpp"
#include "model/checkpoint_fingerprint.hpp"
#include "model/file_io.hpp"
#include "model/finite.hpp"
#include "model/json.hpp"

namespace volt {

namespace fs = std::filesystem;

namespace {

constexpr const char* index_file_name = "model.safetensors.index.json";

caf::error bad(const std::string& where, const std::string& what) {
  return make_volt_error(volt_errc::invalid_checkpoint, where + ": " + what);
}

/// Parses a decimal index without sign or leading zeros at the start of `text`;
/// advances it.
bool take_index(std::string_view& text, int64_t& out) {
  size_t n = 0;
  while (n < text.size() && text[n] >= '0' && text[n] <= '9')
    ++n;
  if (n == 0 || n > 9 || (n > 1 && text[0] == '0'))
    return false;
  out = 0;
  for (size_t i = 0; i < n; ++i)
    out = out * 10 + (text[i] - '0');
  text.remove_prefix(n);
  return true;
}

bool take_prefix(std::string_view& text, std::string_view prefix) {
  if (text.substr(0, prefix.size()) != prefix)
    return false;
  text.remove_prefix(prefix.size());
  return true;
}

/// The layer index of a "model.layers.N." tensor name, or -1.
int64_t layer_of(std::string_view name) {
  int64_t layer = -1;
  if (!take_prefix(name, "model.layers.") || !take_index(name, layer)
      || !take_prefix(name, "."))
    return -1;
  return layer;
}

/// Checks config.json's layer count against the layers the files hold, before
/// anything builds names or buffers per layer: a count of 10^9 would grow
/// memory without bound long before the first missing tensor showed.
caf::error check_layer_count(const std::string& dir, const model_config& cfg,
                             const std::unordered_set<int64_t>& layers) {
  if (static_cast<int64_t>(layers.size()) >= cfg.num_hidden_layers)
    return caf::none;
  // The first layer without a tensor lies within layers.size() + 1 tries.
  int64_t missing = 0;
  while (layers.count(missing) > 0)
    ++missing;
  return bad(join_path(dir, "config.json"),
             "num_hidden_layers is " + std::to_string(cfg.num_hidden_layers)
               + " but the safetensors files hold tensors of "
               + std::to_string(layers.size()) + " layers (none of layer "
               + std::to_string(missing) + ", e.g. '"
               + layer_tensor_name(missing, "input_layernorm.weight") + "')");
}

/// The file name part of `path`, for messages that name two files.
std::string base_name(const std::string& path) {
  auto pos = path.find_last_of('/');
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

/// Reads model.safetensors.index.json: the shard files in order of first
/// mention, and the tensor -> file map to check against them.
caf::error
read_index(const std::string& dir, const std::string& index_path,
           std::vector<std::string>& files,
           std::vector<std::pair<std::string, std::string>>& weight_map) {
  auto doc = json::parse_file(index_path);
  if (!doc)
    return doc.error();
  auto map = json::find(*doc, "weight_map");
  if (!map || !map->is_object())
    return bad(index_path, "missing 'weight_map' object");
  for (auto& [tensor, file] : map->items()) {
    auto name = file.is_string() ? file.get<std::string>() : std::string{};
    // Shards live next to the index; anything else could read outside the
    // folder.
    if (name.empty() || name == "." || name == ".."
        || name.find('/') != std::string::npos)
      return bad(index_path, "weight_map entry for tensor '" + tensor
                               + "' must be a file name in the folder");
    if (std::find(files.begin(), files.end(), name) == files.end()) {
      std::error_code ec;
      if (!fs::is_regular_file(join_path(dir, name), ec))
        return bad(index_path, "weight_map names missing file '" + name
                                 + "' (for tensor '" + tensor + "')");
      files.push_back(name);
    }
    weight_map.emplace_back(tensor, name);
  }
  if (files.empty())
    return bad(index_path, "weight_map is empty");
  return caf::none;
}

/// Every regular *.safetensors file in `dir`, sorted by name.
caf::error list_safetensors(const std::string& dir,
                            std::vector<std::string>& files) {
  std::error_code ec;
  for (fs::directory_iterator i{dir, ec}, end; !ec && i != end;
       i.increment(ec)) {
    auto name = i->path().filename().string();
    if (name.size() > 12
        && name.compare(name.size() - 12, 12, ".safetensors") == 0
        && i->is_regular_file(ec))
      files.push_back(name);
  }
  if (ec)
    return bad(dir, "cannot list folder: " + ec.message());
  if (files.empty())
    return bad(dir, "no *.safetensors file");
  std::sort(files.begin(), files.end());
  return caf::none;
}

} // namespace

int64_t f32_tensor::numel() const {
  int64_t n = 1;
  for (auto d : shape)
    n *= d;
  return n;
}

// -- names --------------------------------------------------------------------

std::string layer_tensor_name(int64_t layer, const std::string& suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

std::string expert_weight_name(int64_t layer, int64_t expert,
                               const std::string& w) {
  return layer_tensor_name(layer, "block_sparse_moe.experts."
                                    + std::to_string(expert) + "." + w
                                    + ".weight");
}

std::vector<std::string> dense_tensor_names(const model_config& cfg) {
  static const char* per_layer[] = {
    "input_layernorm.weight",       "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",      "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",      "post_attention_layernorm.weight",
    "block_sparse_moe.gate.weight",
  };
  std::vector<std::string> names;
  names.emplace_back("model.embed_tokens.weight");
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
    for (auto suffix : per_layer)
      names.push_back(layer_tensor_name(l, suffix));
  names.emplace_back("model.norm.weight");
  if (!cfg.tie_word_embeddings)
    names.emplace_back("lm_head.weight");
  return names;
}

std::vector<std::string>
expert_tensor_names(const model_config& cfg,
                    const std::vector<uint32_t>& experts) {
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(cfg.num_hidden_layers) * experts.size()
                * 3);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
    for (auto e : experts)
      for (auto w : {"w1", "w2", "w3"})
        names.push_back(expert_weight_name(l, e, w));
  return names;
}

// -- validation ---------------------------------------------------------------

caf::error check_tensor(const model_config& cfg, const tensor_info& info) {
  auto hidden = cfg.hidden_size;
  auto q_rows = cfg.num_attention_heads * cfg.head_dim;
  auto kv_rows = cfg.num_key_value_heads * cfg.head_dim;
  auto ffn = cfg.intermediate_size;
  std::vector<int64_t> expected;
  std::string_view rest = info.name;
  if (rest == "model.embed_tokens.weight" || rest == "lm_head.weight") {
    expected = {cfg.vocab_size, hidden};
  } else if (rest == "model.norm.weight") {
    expected = {hidden};
  } else if (take_prefix(rest, "model.layers.")) {
    int64_t layer = 0;
    if (!take_index(rest, layer) || !take_prefix(rest, "."))
      return caf::none; // not a layer tensor we know
    auto at_layer = [&](const std::string& what) {
      return bad(info.file, "tensor '" + info.name + "': " + what);
    };
    if (layer >= cfg.num_hidden_layers)
      return at_layer("layer " + std::to_string(layer)
                      + " out of range (config.json: num_hidden_layers "
                      + std::to_string(cfg.num_hidden_layers) + ")");
    int64_t expert = 0;
    if (rest == "input_layernorm.weight"
        || rest == "post_attention_layernorm.weight") {
      expected = {hidden};
    } else if (rest == "self_attn.q_proj.weight") {
      expected = {q_rows, hidden};
    } else if (rest == "self_attn.k_proj.weight"
               || rest == "self_attn.v_proj.weight") {
      expected = {kv_rows, hidden};
    } else if (rest == "self_attn.o_proj.weight") {
      expected = {hidden, q_rows};
    } else if (rest == "block_sparse_moe.gate.weight") {
      expected = {cfg.num_local_experts, hidden};
    } else if (take_prefix(rest, "block_sparse_moe.experts.")
               && take_index(rest, expert)) {
      if (rest == ".w1.weight" || rest == ".w3.weight")
        expected = {ffn, hidden};
      else if (rest == ".w2.weight")
        expected = {hidden, ffn};
      else
        return caf::none;
      if (expert >= cfg.num_local_experts)
        return at_layer("expert " + std::to_string(expert)
                        + " out of range (config.json: num_local_experts "
                        + std::to_string(cfg.num_local_experts) + ")");
    } else {
      return caf::none;
    }
  } else {
    return caf::none;
  }
  if (!is_float(info.type))
    return bad(info.file, "tensor '" + info.name + "' has dtype "
                            + to_string(info.type)
                            + "; weights must be F32, F16 or BF16");
  if (info.shape != expected)
    return bad(info.file, "tensor '" + info.name + "' has shape "
                            + to_string(info.shape) + ", expected "
                            + to_string(expected) + " from config.json");
  return caf::none;
}

// -- checkpoint ---------------------------------------------------------------

caf::expected<checkpoint> checkpoint::open(const std::string& dir) {
  std::error_code ec;
  auto st = fs::status(dir, ec);
  if (!fs::exists(st))
    return bad(dir, "checkpoint folder does not exist");
  if (!fs::is_directory(st))
    return bad(dir, "checkpoint path is not a folder");
  checkpoint result;
  result.dir_ = dir;
  auto cfg = read_model_config(dir);
  if (!cfg)
    return cfg.error();
  result.config_ = std::move(*cfg);
  std::vector<std::string> files;
  std::vector<std::pair<std::string, std::string>> weight_map;
  auto index_path = join_path(dir, index_file_name);
  bool has_index = fs::exists(index_path, ec);
  if (auto err = has_index ? read_index(dir, index_path, files, weight_map)
                           : list_safetensors(dir, files))
    return err;
  std::unordered_set<int64_t> layers;
  for (auto& name : files) {
    auto file = safetensors_file::open(join_path(dir, name));
    if (!file)
      return file.error();
    for (auto& info : (*file)->tensors()) {
      auto [i, added] = result.by_name_.emplace(info.name,
                                                located{&info, *file});
      if (!added)
        return bad(dir, "tensor '" + info.name + "' is in both "
                          + base_name(i->second.info->file) + " and " + name);
      if (auto err = check_tensor(result.config_, info))
        return err;
      if (auto layer = layer_of(info.name); layer >= 0)
        layers.insert(layer);
    }
    result.files_.push_back(std::move(*file));
  }
  if (auto err = check_layer_count(dir, result.config_, layers))
    return err;
  for (auto& [tensor, file] : weight_map) {
    auto i = result.by_name_.find(tensor);
    if (i == result.by_name_.end() || base_name(i->second.info->file) != file)
      return bad(index_path, "tensor '" + tensor + "' is not in " + file
                               + " as weight_map says");
  }
  auto config_text = read_text_file(join_path(dir, "config.json"));
  if (!config_text)
    return config_text.error();
  result.fingerprint_ = fingerprint_checkpoint(*config_text, result.tensors());
  return result;
}

const tensor_info* checkpoint::find(const std::string& name) const {
  auto i = by_name_.find(name);
  return i == by_name_.end() ? nullptr : i->second.info;
}

std::vector<const tensor_info*> checkpoint::tensors() const {
  std::vector<const tensor_info*> result;
  for (auto& file : files_)
    for (auto& info : file->tensors())
      result.push_back(&info);
  return result;
}

caf::error checkpoint::require(const std::vector<std::string>& names) const {
  const std::string* first = nullptr;
  size_t missing = 0;
  for (auto& name : names)
    if (by_name_.count(name) == 0) {
      if (!first)
        first = &name;
      ++missing;
    }
  if (!first)
    return caf::none;
  auto what = "missing tensor '" + *first + "'";
  if (missing > 1)
    what += " and " + std::to_string(missing - 1) + " more";
  return bad(dir_, what);
}

caf::expected<f32_tensor> checkpoint::load_f32(const std::string& name) const {
  auto i = by_name_.find(name);
  if (i == by_name_.end())
    return bad(dir_, "missing tensor '" + name + "'");
  auto& [info, file] = i->second;
  if (!is_float(info->type))
    return bad(info->file, "tensor '" + name + "' has dtype "
                             + to_string(info->type) + ", not a float type");
  f32_tensor result;
  result.shape = info->shape;
  auto n = static_cast<size_t>(info->numel());
  if (info->type == dtype::f32
      && reinterpret_cast<uintptr_t>(info->data) % alignof(float) == 0) {
    result.data = reinterpret_cast<const float*>(info->data);
    result.keep_alive = file;
  } else {
    auto copy = std::make_shared<std::vector<float>>(n);
    convert_to_f32(info->type, info->data, n, copy->data());
    result.data = copy->data();
    result.keep_alive = std::move(copy);
  }
  auto at = first_non_finite(result.data, n);
  if (auto err = check_finite(*info, at, at >= 0 ? result.data[at] : 0.0f))
    return err;
  return result;
}

caf::error check_finite(const tensor_info& info, int64_t element,
                        float value) {
  if (element < 0)
    return caf::none;
  return bad(info.file, "tensor '" + info.name + "' holds "
                          + non_finite_name(value) + " at element "
                          + std::to_string(element) + " of "
                          + to_string(info.shape)
                          + "; weights must be finite (was the checkpoint "
                            "saved after a diverged step?)");
}

} // namespace volt
