#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "caf/expected.hpp"
#include "model/checkpoint.hpp"
#include "model/model_config.hpp"

namespace volt {

/// The non-expert weights of one decoder layer.
struct dense_layer_weights {
  f32_tensor input_norm; // [hidden]
  f32_tensor q_proj; // [n_heads * head_dim, hidden]
  f32_tensor k_proj; // [n_kv_heads * head_dim, hidden]
  f32_tensor v_proj; // [n_kv_heads * head_dim, hidden]
  f32_tensor o_proj; // [hidden, n_heads * head_dim]
  f32_tensor post_norm; // [hidden]
  f32_tensor gate; // [n_experts, hidden], the router
};

/// The weights a router (or standalone) node needs: embeddings, attention,
/// norms, routers and lm_head. Experts live elsewhere (`expert_weights`).
struct dense_weights {
  model_config config;
  f32_tensor embed_tokens; // [vocab, hidden]
  std::vector<dense_layer_weights> layers;
  f32_tensor final_norm; // [hidden]
  f32_tensor lm_head; // [vocab, hidden]; embed_tokens when tied

  /// Loads them from `ckpt` after checking that every tensor is present.
  static caf::expected<std::shared_ptr<const dense_weights>>
  load(const checkpoint& ckpt);
};

/// The FFN weights of one expert in one layer.
struct expert_ffn_weights {
  f32_tensor w1; // [ffn, hidden]
  f32_tensor w3; // [ffn, hidden]
  f32_tensor w2; // [hidden, ffn]
};

/// Which experts one actor hosts (of every layer) and of which checkpoint:
/// what a router checks and what a batch is checked against, without the
/// weights themselves (a GPU host keeps those on its device only).
class hosted_experts {
public:
  /// Checks that `ids` are experts of the model and that `ckpt` holds their
  /// tensors (errors name the folder and the first missing tensor).
  static caf::expected<hosted_experts>
  of(const checkpoint& ckpt, const std::vector<uint32_t>& ids);

  const model_config& config() const {
    return config_;
  }

  /// Hosted expert ids, ascending, each once.
  const std::vector<uint32_t>& ids() const {
    return ids_;
  }

  /// The fingerprint of the checkpoint they came from, which a router
  /// compares with its own before it uses them.
  const std::string& checkpoint_fingerprint() const {
    return checkpoint_fingerprint_;
  }

  /// Index of expert `id` among ids(), or -1 when not hosted here.
  int32_t index_of(uint32_t id) const {
    return id < index_of_id_.size() ? index_of_id_[id] : -1;
  }

private:
  model_config config_;
  std::string checkpoint_fingerprint_;
  std::vector<uint32_t> ids_;
  std::vector<int32_t> index_of_id_; // [n_experts], -1 when not hosted
};

/// The weights of the experts one actor hosts, for every layer, in float32
/// on the host (what the CPU computes with).
class expert_weights {
public:
  /// Loads the experts `ids` of every layer; a worker touches no other tensor.
  static caf::expected<std::shared_ptr<const expert_weights>>
  load(const checkpoint& ckpt, const std::vector<uint32_t>& ids);

  const hosted_experts& hosting() const {
    return hosting_;
  }

  const model_config& config() const {
    return hosting_.config();
  }

  /// Hosted expert ids, ascending.
  const std::vector<uint32_t>& ids() const {
    return hosting_.ids();
  }

  /// Returns the weights of expert `id` in `layer`, or nullptr if not hosted
  /// here.
  const expert_ffn_weights* find(int64_t layer, uint32_t id) const;

private:
  hosted_experts hosting_;
  std::vector<expert_ffn_weights> by_layer_slot_; // [n_layers, ids().size()]
};

} // namespace volt
