#pragma once

// The Mixtral layer graph over the CPU ops, in the pieces the CPU executor
// (model/cpu_executor.hpp) strings together, cut where a layer's rows may
// leave for experts on other nodes; expert actors run `run_experts`.

#include <cstdint>
#include <vector>

#include "model/kv_cache.hpp"
#include "model/mixtral.hpp"
#include "model/step.hpp"

namespace volt {

/// Hidden states of the batch after the embedding lookup.
/// - hidden (out): [n, hidden_size]
void embed(const dense_weights& w, const step_batch& batch,
           std::vector<float>& hidden);

/// Pre-norm self-attention with its residual: hidden +=
/// o_proj(attn(rms_norm(hidden))). Writes the batch's K/V into `cache` first,
/// then reads them back through the page tables.
/// - hidden (in/out): [n, hidden_size]
void attention_block(const dense_weights& w, int64_t layer, kv_cache& cache,
                     const step_batch& batch, std::vector<float>& hidden);

/// The MoE block's input: rms_norm(hidden) with post_attention_layernorm.
/// - hidden (in):  [n, hidden_size]
/// - out    (out): [n, hidden_size]
void moe_input(const dense_weights& w, int64_t layer,
               const std::vector<float>& hidden, std::vector<float>& out);

/// The router's logits alone: x · gateᵀ.
/// - x      (in):  [n, hidden_size]
/// - logits (out): [n, n_experts]
void router_logits(const dense_weights& w, int64_t layer, const float* x,
                   int64_t n, std::vector<float>& logits);

/// The cross-layer prediction of a layer's routing (Eliseev & Mazur 2023):
/// the layer's router applied to the hidden state entering the layer, before
/// its attention, normalised with the layer's post-attention norm as the
/// router's real input is.
/// - hidden (in):  [n, hidden_size]
/// - logits (out): [n, n_experts]
void entry_router_logits(const dense_weights& w, int64_t layer,
                         const std::vector<float>& hidden,
                         std::vector<float>& logits);

/// Router: logits = x · gateᵀ, then softmax → top-k → renormalise, with the
/// experts that `available` leaves out dropped after the choice (see
/// cpu::topk_gating).
/// - x            (in):  [n, hidden_size]
/// - available    (in):  [n_experts] or null (every expert)
/// - topk_ids     (out): [n, k]
/// - topk_weights (out): [n, k]
/// - degraded     (out): [n], set to 1 for rows that lost an expert; or null
void route(const dense_weights& w, int64_t layer, const float* x, int64_t n,
           std::vector<int32_t>& topk_ids, std::vector<float>& topk_weights,
           const uint8_t* available = nullptr, uint8_t* degraded = nullptr);

/// Tokens of one layer grouped by expert: the rows each expert must compute.
struct dispatch_plan {
  std::vector<uint32_t> expert_ids; // experts with at least one row, ascending
  std::vector<uint32_t> row_counts; // [expert_ids.size()]
  std::vector<int32_t> row_token; // [n * k], token of each grouped row
  std::vector<int32_t>
    row_slot; // [n * k], top-k slot (0..k-1) of each grouped row
};

/// Groups the (token, slot) pairs of `topk_ids` [n, k] by expert, tokens
/// ascending within an expert.
dispatch_plan plan_dispatch(const std::vector<int32_t>& topk_ids, int64_t n,
                            int64_t k, int64_t n_experts);

/// Runs experts over grouped rows: rows [offset, offset + row_counts[i]) go
/// through expert expert_ids[i], the experts spread over the compute threads
/// (cpu::parallel_for; inline when called from inside one). Returns an error
/// naming an expert that `experts` does not host.
/// - rows (in):  [sum(row_counts), hidden_size]
/// - out  (out): [sum(row_counts), hidden_size]
caf::error run_experts(const expert_weights& experts, int64_t layer,
                       const std::vector<uint32_t>& expert_ids,
                       const std::vector<uint32_t>& row_counts,
                       const float* rows, float* out);

/// Weighted sum of the expert outputs back into token order, added to the
/// residual: hidden[t] += Σ_j topk_weights[t, j] · y(t, j), summed over j =
/// 0..k-1 in order so that the result does not depend on which node computed
/// which expert.
/// - expert_out (in):     [n * k, hidden_size], grouped as in `plan`
/// - hidden     (in/out): [n, hidden_size]
void combine(const dispatch_plan& plan, const std::vector<float>& topk_weights,
             int64_t k, const float* expert_out, int64_t hidden_size,
             std::vector<float>& hidden);

/// Final norm and lm_head for the given rows of the batch.
/// - hidden (in):  [n, hidden_size]
/// - logits (out): [rows.size(), vocab]
void final_logits(const dense_weights& w, const std::vector<float>& hidden,
                  const std::vector<int64_t>& rows, std::vector<float>& logits);

} // namespace volt
