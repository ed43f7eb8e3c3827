#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "caf/error.hpp"
#include "caf/expected.hpp"

#include "model/model_config.hpp"
#include "model/safetensors.hpp"

namespace volt {

/// A float32 view of a weight: zero-copy into the mmap for aligned F32 tensors,
/// otherwise an owned converted copy.
struct f32_tensor {
  /// Dimensions, outermost first.
  std::vector<int64_t> shape;
  /// numel() floats, row-major; valid while `keep_alive` lives.
  const float* data = nullptr;
  /// Owns the mapping or the converted copy behind `data`.
  std::shared_ptr<const void> keep_alive;

  /// Product of the dimensions.
  int64_t numel() const;
};

/// A Hugging Face Mixtral folder: config.json + one or more *.safetensors (with
/// or without model.safetensors.index.json). Copies share the mapped files.
class checkpoint {
public:
  /// Opens `dir`: reads config.json, maps the safetensors files (those the
  /// index names if model.safetensors.index.json exists, else every
  /// *.safetensors), validates every header, the index against the files,
  /// duplicates across files, and the shape, dtype and layer / expert indices
  /// of every tensor with a Mixtral name. Of the tensor data it reads only
  /// the samples of the fingerprint (about 64 KiB per tensor).
  static caf::expected<checkpoint> open(const std::string& dir);

  /// Hyper-parameters from config.json.
  const model_config& config() const {
    return config_;
  }

  /// What identifies this checkpoint among others of the same shapes (64 hex
  /// digits; model/checkpoint_fingerprint.hpp says what it covers).
  const std::string& fingerprint() const {
    return fingerprint_;
  }

  /// The folder as given to `open`.
  const std::string& dir() const {
    return dir_;
  }

  /// Returns the tensor `name`, or nullptr.
  const tensor_info* find(const std::string& name) const;

  /// Every tensor of every file, in file order then header order.
  std::vector<const tensor_info*> tensors() const;

  /// Errors if any of `names` is missing, naming the first missing one and how
  /// many more.
  caf::error require(const std::vector<std::string>& names) const;

  /// Loads one tensor as float32 (error naming the folder and tensor when
  /// missing, or the file and tensor when it holds a NaN or an infinity).
  caf::expected<f32_tensor> load_f32(const std::string& name) const;

private:
  struct located {
    const tensor_info* info;
    std::shared_ptr<safetensors_file> file;
  };

  model_config config_;
  std::string dir_;
  std::string fingerprint_;
  std::vector<std::shared_ptr<safetensors_file>> files_;
  std::unordered_map<std::string, located> by_name_;
};

/// Names of the dense tensors: embed_tokens, per layer the norms, attention and
/// router gate, the final norm and lm_head (omitted when tie_word_embeddings:
/// embed_tokens serves).
std::vector<std::string> dense_tensor_names(const model_config& cfg);

/// Names of w1, w2, w3 of `experts` in every layer, layer by layer.
std::vector<std::string>
expert_tensor_names(const model_config& cfg,
                    const std::vector<uint32_t>& experts);

/// Returns "model.layers.<layer>.<suffix>".
std::string layer_tensor_name(int64_t layer, const std::string& suffix);

/// Returns "model.layers.<layer>.block_sparse_moe.experts.<expert>.<w>.weight".
std::string expert_weight_name(int64_t layer, int64_t expert,
                               const std::string& w);

/// Returns an error naming `info`'s file and tensor when `element` >= 0: the
/// index of a non-finite `value` in it (found by model/finite.hpp).
caf::error check_finite(const tensor_info& info, int64_t element, float value);

/// Checks a tensor with a Mixtral name against `cfg` (shape, float dtype, layer
/// and expert in range); tensors with other names pass. Errors are one line
/// naming `info.file`.
caf::error check_tensor(const model_config& cfg, const tensor_info& info);

} // namespace volt
