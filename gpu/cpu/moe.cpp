// Mixture-of-experts CPU ops: top-k gating and the SwiGLU expert FFN.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

#include "gpu/cpu/cpu_ops.hpp"
#include "gpu/cpu/fast_exp.hpp"

namespace volt::cpu {

void topk_gating(const float* logits, int64_t n_tokens, int64_t n_experts,
                 int64_t k, int32_t* topk_ids, float* topk_weights,
                 const uint8_t* available, uint8_t* degraded) {
  std::vector<float> probs(static_cast<size_t>(n_experts));
  std::vector<int32_t> order(static_cast<size_t>(n_experts));
  std::vector<int32_t> kept_ids;
  kept_ids.reserve(static_cast<size_t>(k));
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
    // The top k over all experts, less the unavailable ones; when none is
    // left, the top k of the available experts.
    kept_ids.clear();
    for (int64_t j = 0; j < k; ++j)
      if (available == nullptr || available[order[j]] != 0)
        kept_ids.push_back(order[j]);
    if (degraded != nullptr && static_cast<int64_t>(kept_ids.size()) < k)
      degraded[t] = 1;
    bool all_lost = kept_ids.empty();
    for (int64_t j = k; all_lost && j < n_experts
                        && static_cast<int64_t>(kept_ids.size()) < k;
         ++j)
      if (available[order[j]] != 0)
        kept_ids.push_back(order[j]);
    if (kept_ids.empty()) // nothing available (callers check): no mask
      kept_ids.assign(order.begin(), order.begin() + k);
    // Renormalising the softmax over the kept ones equals a softmax over
    // their logits; we follow Mixtral's order of operations so that float32
    // rounding matches it too.
    float kept = 0;
    for (auto e : kept_ids)
      kept += probs[e];
    for (int64_t j = 0; j < k; ++j) {
      bool filler = j >= static_cast<int64_t>(kept_ids.size());
      auto e = kept_ids[filler ? 0 : j];
      topk_ids[t * k + j] = e;
      topk_weights[t * k + j] = filler ? 0.0f : probs[e] / kept;
    }
  }
}

namespace {

/// gate[i] = silu(gate[i]) * up[i], with silu(g) = g / (1 + e^-g) computed
/// from e = e^-|g| (exp_nonpositive, vectorised; std::exp per element was a
/// sixth of an expert's time): g / (1 + e) for g >= 0, g·e / (1 + e) below.
/// Selections on the bits rather than branches, so that GCC vectorises.
__attribute__((target_clones("avx2", "default"))) void
silu_times(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    uint32_t bits;
    std::memcpy(&bits, &g, sizeof(bits));
    const uint32_t minus_abs_bits = bits | 0x80000000u;
    float minus_abs;
    std::memcpy(&minus_abs, &minus_abs_bits, sizeof(minus_abs));
    const float e = exp_nonpositive(minus_abs);
    uint32_t e_bits;
    std::memcpy(&e_bits, &e, sizeof(e_bits));
    const uint32_t negative = 0u - (bits >> 31); // all ones when g < 0
    const uint32_t num_bits = (e_bits & negative) | (0x3f800000u & ~negative);
    float num; // e for g < 0, else 1
    std::memcpy(&num, &num_bits, sizeof(num));
    gate[i] = g * num / (1.0f + e) * up[i];
  }
}

} // namespace

void swiglu_expert(const float* x, const float* w1, const float* w3,
                   const float* w2, int64_t n_rows, int64_t hidden, int64_t ffn,
                   float* scratch, float* out) {
  float* gate = scratch;
  float* up = scratch + n_rows * ffn;
  matmul_nt(x, w1, n_rows, hidden, ffn, gate);
  matmul_nt(x, w3, n_rows, hidden, ffn, up);
  silu_times(gate, up, n_rows * ffn);
  matmul_nt(gate, w2, n_rows, ffn, hidden, out);
}

void swiglu_expert_bf16(const float* x, const uint16_t* w13, const uint16_t* w2,
                        int64_t n_rows, int64_t hidden, int64_t ffn,
                        float* scratch, float* out) {
  swiglu_expert_bf16_part(x, w13, w2, n_rows, hidden, ffn, 0, ffn, scratch,
                          out);
}

void swiglu_expert_bf16_part(const float* x, const uint16_t* w13,
                             const uint16_t* w2, int64_t n_rows, int64_t hidden,
                             int64_t ffn, int64_t first, int64_t last,
                             float* scratch, float* out) {
  const int64_t units = last - first;
  float* gate = scratch;
  float* up = scratch + n_rows * units;
  matmul_nt_bf16(x, w13 + first * hidden, n_rows, hidden, units, gate);
  matmul_nt_bf16(x, w13 + (ffn + first) * hidden, n_rows, hidden, units, up);
  silu_times(gate, up, n_rows * units);
  round_to_bf16(gate, n_rows * units);
  matmul_nt_bf16(gate, w2 + first, n_rows, units, hidden, out, ffn);
}

} // namespace volt::cpu
