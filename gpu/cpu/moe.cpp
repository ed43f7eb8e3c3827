// Mixture-of-experts CPU ops: top-k gating and the SwiGLU expert FFN.

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "gpu/cpu/cpu_ops.hpp"

namespace volt::cpu {

void topk_gating(const float* logits, int64_t n_tokens, int64_t n_experts,
                 int64_t k, int32_t* topk_ids, float* topk_weights) {
  std::vector<float> probs(static_cast<size_t>(n_experts));
  std::vector<int32_t> order(static_cast<size_t>(n_experts));
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* row = logits + t * n_experts;
    float max_logit = *std::max_element(row, row + n_experts);
    float denom = 0;
    for (int64_t e = 0; e < n_experts; ++e) {
      probs[e] = std::exp(row[e] - max_logit);
      denom += probs[e];
    }
    for (auto& p : probs)
      p /= denom;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return probs[a] > probs[b]; });
    // Renormalising the softmax over the chosen k equals a softmax over their
    // logits; we follow Mixtral's order of operations so that float32 rounding
    // matches it too.
    float kept = 0;
    for (int64_t j = 0; j < k; ++j)
      kept += probs[order[j]];
    for (int64_t j = 0; j < k; ++j) {
      topk_ids[t * k + j] = order[j];
      topk_weights[t * k + j] = probs[order[j]] / kept;
    }
  }
}

void swiglu_expert(const float* x, const float* w1, const float* w3,
                   const float* w2, int64_t n_rows, int64_t hidden, int64_t ffn,
                   float* scratch, float* out) {
  float* gate = scratch;
  float* up = scratch + n_rows * ffn;
  matmul_nt(x, w1, n_rows, hidden, ffn, gate);
  matmul_nt(x, w3, n_rows, hidden, ffn, up);
  for (int64_t i = 0; i < n_rows * ffn; ++i) {
    float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
  matmul_nt(gate, w2, n_rows, ffn, hidden, out);
}

} // namespace volt::cpu
