#pragma once

// An independent float64 re-implementation of the Mixtral forward pass, written
// straight from the Hugging Face modelling code with no KV cache, no paging and
// no actors: every position is recomputed from the prompt. It reads the weights
// through `checkpoint::load_f32` (which has tests of its own) and serves as the
// reference for checkpoints without a reference.json (other shapes, BF16/F16
// weights, sharded files).

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "model/checkpoint.hpp"

namespace volt::test {

class mixtral_f64 {
public:
  using vec = std::vector<double>;

  explicit mixtral_f64(const checkpoint& ckpt)
    : ckpt_(ckpt), cfg_(ckpt.config()) {}

  /// Logits [n, vocab] at every position of `ids`, and the chosen experts
  /// [layer][token] -> sorted ids in `routing`.
  std::vector<vec>
  forward(const std::vector<int32_t>& ids,
          std::vector<std::vector<std::vector<int>>>* routing = nullptr) {
    const int64_t n = static_cast<int64_t>(ids.size());
    const int64_t h = cfg_.hidden_size;
    auto embed = weight("model.embed_tokens.weight");
    std::vector<vec> x(n, vec(h));
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < h; ++i)
        x[t][i] = embed[ids[t] * h + i];
    if (routing)
      routing->assign(cfg_.num_hidden_layers, {});
    for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
      auto attn = attention(l, x);
      for (int64_t t = 0; t < n; ++t)
        for (int64_t i = 0; i < h; ++i)
          x[t][i] += attn[t][i];
      auto post = weight(layer(l, "post_attention_layernorm.weight"));
      for (int64_t t = 0; t < n; ++t) {
        auto moe = moe_block(l, rms_norm(x[t], post),
                             routing ? &(*routing)[l] : nullptr);
        for (int64_t i = 0; i < h; ++i)
          x[t][i] += moe[i];
      }
    }
    auto norm = weight("model.norm.weight");
    auto head = weight(cfg_.tie_word_embeddings ? "model.embed_tokens.weight"
                                                : "lm_head.weight");
    std::vector<vec> logits;
    for (int64_t t = 0; t < n; ++t)
      logits.push_back(linear(rms_norm(x[t], norm), head, cfg_.vocab_size));
    return logits;
  }

  /// Greedy decoding by full recomputation.
  std::vector<int32_t> greedy(std::vector<int32_t> ids, size_t new_tokens) {
    std::vector<int32_t> out;
    for (size_t s = 0; s < new_tokens; ++s) {
      auto logits = forward(ids).back();
      auto best = static_cast<int32_t>(
        std::max_element(logits.begin(), logits.end()) - logits.begin());
      out.push_back(best);
      ids.push_back(best);
    }
    return out;
  }

private:
  std::string layer(int64_t l, const std::string& suffix) {
    return "model.layers." + std::to_string(l) + "." + suffix;
  }

  vec weight(const std::string& name) {
    auto t = ckpt_.load_f32(name);
    if (!t)
      return {};
    return vec(t->data, t->data + t->numel());
  }

  /// y = W x with W stored [out, in].
  static vec linear(const vec& x, const vec& w, int64_t out) {
    const auto in = static_cast<int64_t>(x.size());
    vec y(out, 0.0);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i)
        y[o] += w[o * in + i] * x[i];
    return y;
  }

  vec rms_norm(const vec& x, const vec& w) const {
    double ms = 0;
    for (auto v : x)
      ms += v * v;
    auto inv
      = 1.0 / std::sqrt(ms / static_cast<double>(x.size()) + cfg_.rms_norm_eps);
    vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i)
      y[i] = w[i] * x[i] * inv;
    return y;
  }

  void rope(vec& v, int64_t pos) const {
    const int64_t hd = cfg_.head_dim;
    for (int64_t i = 0; i < hd / 2; ++i) {
      double ang = static_cast<double>(pos)
                   * std::pow(cfg_.rope_theta, -2.0 * i / hd);
      double a = v[i], b = v[i + hd / 2];
      v[i] = a * std::cos(ang) - b * std::sin(ang);
      v[i + hd / 2] = b * std::cos(ang) + a * std::sin(ang);
    }
  }

  std::vector<vec> attention(int64_t l, const std::vector<vec>& x) {
    const int64_t n = static_cast<int64_t>(x.size());
    const int64_t hd = cfg_.head_dim, nh = cfg_.num_attention_heads,
                  nkv = cfg_.num_key_value_heads, h = cfg_.hidden_size;
    auto norm = weight(layer(l, "input_layernorm.weight"));
    auto wq = weight(layer(l, "self_attn.q_proj.weight"));
    auto wk = weight(layer(l, "self_attn.k_proj.weight"));
    auto wv = weight(layer(l, "self_attn.v_proj.weight"));
    auto wo = weight(layer(l, "self_attn.o_proj.weight"));
    // q[t][head] etc. after RoPE.
    std::vector<std::vector<vec>> q(n), k(n), v(n);
    for (int64_t t = 0; t < n; ++t) {
      auto xn = rms_norm(x[t], norm);
      auto qa = linear(xn, wq, nh * hd), ka = linear(xn, wk, nkv * hd),
           va = linear(xn, wv, nkv * hd);
      for (int64_t j = 0; j < nh; ++j) {
        q[t].emplace_back(qa.begin() + j * hd, qa.begin() + (j + 1) * hd);
        rope(q[t].back(), t);
      }
      for (int64_t j = 0; j < nkv; ++j) {
        k[t].emplace_back(ka.begin() + j * hd, ka.begin() + (j + 1) * hd);
        rope(k[t].back(), t);
        v[t].emplace_back(va.begin() + j * hd, va.begin() + (j + 1) * hd);
      }
    }
    std::vector<vec> out(n);
    for (int64_t t = 0; t < n; ++t) {
      vec heads(nh * hd, 0.0);
      int64_t first = cfg_.sliding_window > 0
                        ? std::max<int64_t>(0, t - cfg_.sliding_window + 1)
                        : 0;
      for (int64_t j = 0; j < nh; ++j) {
        auto g = j / (nh / nkv);
        vec s;
        for (int64_t p = first; p <= t; ++p)
          s.push_back(std::inner_product(q[t][j].begin(), q[t][j].end(),
                                         k[p][g].begin(), 0.0)
                      / std::sqrt(static_cast<double>(hd)));
        double mx = *std::max_element(s.begin(), s.end()), den = 0;
        for (auto& e : s)
          den += (e = std::exp(e - mx));
        for (int64_t p = first; p <= t; ++p)
          for (int64_t i = 0; i < hd; ++i)
            heads[j * hd + i] += s[p - first] / den * v[p][g][i];
      }
      out[t] = linear(heads, wo, h);
    }
    return out;
  }

  vec moe_block(int64_t l, const vec& x,
                std::vector<std::vector<int>>* routing) {
    const int64_t e = cfg_.num_local_experts, k = cfg_.num_experts_per_tok,
                  h = cfg_.hidden_size, f = cfg_.intermediate_size;
    auto logits = linear(x, weight(layer(l, "block_sparse_moe.gate.weight")),
                         e);
    // Unnormalised: the softmax's denominator cancels when the top-k are
    // renormalised below.
    double mx = *std::max_element(logits.begin(), logits.end());
    vec p(e);
    for (int64_t i = 0; i < e; ++i)
      p[i] = std::exp(logits[i] - mx);
    std::vector<int> order(e);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return p[a] > p[b]; });
    double kept = 0;
    for (int64_t j = 0; j < k; ++j)
      kept += p[order[j]];
    vec y(h, 0.0);
    std::vector<int> chosen(order.begin(), order.begin() + k);
    for (auto ex : chosen) {
      auto name = [&](const char* w) {
        return layer(l, "block_sparse_moe.experts." + std::to_string(ex) + "."
                          + w + ".weight");
      };
      auto a = linear(x, weight(name("w1")), f),
           b = linear(x, weight(name("w3")), f);
      for (int64_t i = 0; i < f; ++i)
        a[i] = a[i] / (1 + std::exp(-a[i])) * b[i];
      auto o = linear(a, weight(name("w2")), h);
      for (int64_t i = 0; i < h; ++i)
        y[i] += p[ex] / kept * o[i];
    }
    if (routing) {
      std::sort(chosen.begin(), chosen.end());
      routing->push_back(chosen);
    }
    return y;
  }

  const checkpoint& ckpt_;
  model_config cfg_;
};

} // namespace volt::test
