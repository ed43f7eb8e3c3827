#include "model/mixtral.hpp"

#include <algorithm>

#include "base/error.hpp"

namespace volt {

namespace {

/// Loads tensors one by one into `slots`, stopping at the first error.
caf::error
load_all(const checkpoint& ckpt,
         std::initializer_list<std::pair<f32_tensor*, std::string>> slots) {
  for (auto& [slot, name] : slots) {
    auto t = ckpt.load_f32(name);
    if (!t)
      return std::move(t.error());
    *slot = std::move(*t);
  }
  return caf::none;
}

} // namespace

caf::expected<std::shared_ptr<const dense_weights>>
dense_weights::load(const checkpoint& ckpt) {
  const auto& cfg = ckpt.config();
  if (auto err = ckpt.require(dense_tensor_names(cfg)))
    return err;
  auto result = std::make_shared<dense_weights>();
  result->config = cfg;
  result->layers.resize(static_cast<size_t>(cfg.num_hidden_layers));
  auto lm_head_name = cfg.tie_word_embeddings ? "model.embed_tokens.weight"
                                              : "lm_head.weight";
  if (auto err = load_all(ckpt,
                          {{&result->embed_tokens, "model.embed_tokens.weight"},
                           {&result->final_norm, "model.norm.weight"},
                           {&result->lm_head, lm_head_name}}))
    return err;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    auto& w = result->layers[static_cast<size_t>(l)];
    auto name = [l](const char* suffix) {
      return layer_tensor_name(l, suffix);
    };
    if (auto err = load_all(
          ckpt, {{&w.input_norm, name("input_layernorm.weight")},
                 {&w.q_proj, name("self_attn.q_proj.weight")},
                 {&w.k_proj, name("self_attn.k_proj.weight")},
                 {&w.v_proj, name("self_attn.v_proj.weight")},
                 {&w.o_proj, name("self_attn.o_proj.weight")},
                 {&w.post_norm, name("post_attention_layernorm.weight")},
                 {&w.gate, name("block_sparse_moe.gate.weight")}}))
      return err;
  }
  return std::shared_ptr<const dense_weights>{std::move(result)};
}

caf::expected<hosted_experts>
hosted_experts::of(const checkpoint& ckpt, const std::vector<uint32_t>& ids) {
  const auto& cfg = ckpt.config();
  hosted_experts result;
  result.config_ = cfg;
  result.checkpoint_fingerprint_ = ckpt.fingerprint();
  result.ids_ = ids;
  std::sort(result.ids_.begin(), result.ids_.end());
  result.ids_.erase(std::unique(result.ids_.begin(), result.ids_.end()),
                    result.ids_.end());
  result.index_of_id_.assign(static_cast<size_t>(cfg.num_local_experts), -1);
  for (size_t i = 0; i < result.ids_.size(); ++i) {
    auto id = result.ids_[i];
    if (id >= static_cast<uint32_t>(cfg.num_local_experts))
      return make_volt_error(volt_errc::invalid_checkpoint,
                             ckpt.dir() + ": expert " + std::to_string(id)
                               + " is outside the model ("
                               + std::to_string(cfg.num_local_experts)
                               + " experts)");
    result.index_of_id_[id] = static_cast<int32_t>(i);
  }
  if (auto err = ckpt.require(expert_tensor_names(cfg, result.ids_)))
    return err;
  return result;
}

caf::expected<std::shared_ptr<const expert_weights>>
expert_weights::load(const checkpoint& ckpt, const std::vector<uint32_t>& ids) {
  auto hosting = hosted_experts::of(ckpt, ids);
  if (!hosting)
    return std::move(hosting.error());
  auto result = std::make_shared<expert_weights>();
  result->hosting_ = std::move(*hosting);
  const auto& hosted = result->hosting_.ids();
  const auto& cfg = result->hosting_.config();
  result->by_layer_slot_.resize(static_cast<size_t>(cfg.num_hidden_layers)
                                * hosted.size());
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
    for (size_t i = 0; i < hosted.size(); ++i) {
      auto& w = result->by_layer_slot_[static_cast<size_t>(l) * hosted.size()
                                       + i];
      auto e = hosted[i];
      if (auto err = load_all(ckpt, {{&w.w1, expert_weight_name(l, e, "w1")},
                                     {&w.w2, expert_weight_name(l, e, "w2")},
                                     {&w.w3, expert_weight_name(l, e, "w3")}}))
        return err;
    }
  return std::shared_ptr<const expert_weights>{std::move(result)};
}

const expert_ffn_weights* expert_weights::find(int64_t layer,
                                               uint32_t id) const {
  const auto& cfg = hosting_.config();
  auto index = hosting_.index_of(id);
  if (layer < 0 || layer >= cfg.num_hidden_layers || index < 0)
    return nullptr;
  return &by_layer_slot_[static_cast<size_t>(layer) * hosting_.ids().size()
                         + static_cast<size_t>(index)];
}

} // namespace volt
