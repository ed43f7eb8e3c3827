#include "model/forward.hpp"

#include <algorithm>
#include <string>

#include "base/error.hpp"
#include "gpu/cpu/cpu_ops.hpp"
#include "gpu/cpu/parallel.hpp"

namespace volt {

namespace {

/// Multiply-adds of an expert batch below which its experts run on the
/// calling thread (see run_experts).
constexpr int64_t parallel_expert_macs = int64_t{1} << 23;

} // namespace

void embed(const dense_weights& w, const step_batch& batch,
           std::vector<float>& hidden) {
  const auto h = w.config.hidden_size;
  hidden.resize(static_cast<size_t>(batch.size() * h));
  cpu::embedding(w.embed_tokens.data, h, batch.token_ids.data(), batch.size(),
                 hidden.data());
}

namespace {

/// Calls `fn(seq, first, count)` for each part of rows [r0, r1) that belongs
/// to one sequence of the batch.
template <class F>
void for_sequence_rows(const step_batch& batch, int64_t r0, int64_t r1, F fn) {
  for (const auto& seq : batch.sequences) {
    auto first = std::max(r0, seq.first_row);
    auto last = std::min(r1, seq.first_row + seq.n_rows);
    if (first < last)
      fn(seq, first, last - first);
  }
}

} // namespace

void attention_block(const dense_weights& w, int64_t layer, kv_cache& cache,
                     const step_batch& batch, std::vector<float>& hidden) {
  const auto& cfg = w.config;
  const auto& lw = w.layers[static_cast<size_t>(layer)];
  const int64_t n = batch.size();
  const int64_t h = cfg.hidden_size;
  const int64_t q_dim = cfg.num_attention_heads * cfg.head_dim;
  const int64_t kv_dim = cfg.num_key_value_heads * cfg.head_dim;
  std::vector<float> x(static_cast<size_t>(n * h));
  std::vector<float> q(static_cast<size_t>(n * q_dim));
  std::vector<float> k(static_cast<size_t>(n * kv_dim));
  std::vector<float> v(static_cast<size_t>(n * kv_dim));
  std::vector<float> attn(static_cast<size_t>(n * q_dim));
  std::vector<float> o(static_cast<size_t>(n * h));
  auto pages = cache.layer(layer);
  const int32_t* positions = batch.positions.data();
  // Every row is computed on its own (fixed-order sums), so any split over
  // threads gives the same bits. Two phases: all rows' K/V must be in the
  // cache before any row attends to its sequence's earlier rows.
  cpu::parallel_for(n, cpu::rows_per_part(), [&](int64_t r0, int64_t r1) {
    auto m = r1 - r0;
    cpu::rms_norm(hidden.data() + r0 * h, lw.input_norm.data, m, h,
                  static_cast<float>(cfg.rms_norm_eps), x.data() + r0 * h);
    cpu::matmul_nt(x.data() + r0 * h, lw.q_proj.data, m, h, q_dim,
                   q.data() + r0 * q_dim);
    cpu::matmul_nt(x.data() + r0 * h, lw.k_proj.data, m, h, kv_dim,
                   k.data() + r0 * kv_dim);
    cpu::matmul_nt(x.data() + r0 * h, lw.v_proj.data, m, h, kv_dim,
                   v.data() + r0 * kv_dim);
    cpu::rope(q.data() + r0 * q_dim, cfg.num_attention_heads,
              k.data() + r0 * kv_dim, cfg.num_key_value_heads, positions + r0,
              m, cfg.head_dim, cfg.rope_theta);
    for_sequence_rows(
      batch, r0, r1,
      [&](const step_batch::sequence& seq, int64_t first, int64_t count) {
        cpu::kv_write(pages, seq.block_table.data(), positions + first, count,
                      k.data() + first * kv_dim, v.data() + first * kv_dim);
      });
  });
  attention_dims dims{cfg.num_attention_heads, cfg.num_key_value_heads,
                      cfg.head_dim, cfg.sliding_window};
  cpu::parallel_for(n, cpu::rows_per_part(), [&](int64_t r0, int64_t r1) {
    for_sequence_rows(
      batch, r0, r1,
      [&](const step_batch::sequence& seq, int64_t first, int64_t count) {
        cpu::paged_attention(q.data() + first * q_dim, positions + first, count,
                             pages, seq.block_table.data(), dims,
                             attn.data() + first * q_dim);
      });
    cpu::matmul_nt(attn.data() + r0 * q_dim, lw.o_proj.data, r1 - r0, q_dim, h,
                   o.data() + r0 * h);
    for (int64_t i = r0 * h; i < r1 * h; ++i)
      hidden[static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
  });
}

void moe_input(const dense_weights& w, int64_t layer,
               const std::vector<float>& hidden, std::vector<float>& out) {
  const auto h = w.config.hidden_size;
  const auto n = static_cast<int64_t>(hidden.size()) / h;
  out.resize(hidden.size());
  cpu::rms_norm(hidden.data(),
                w.layers[static_cast<size_t>(layer)].post_norm.data, n, h,
                static_cast<float>(w.config.rms_norm_eps), out.data());
}

void router_logits(const dense_weights& w, int64_t layer, const float* x,
                   int64_t n, std::vector<float>& logits) {
  const auto& cfg = w.config;
  const auto e = cfg.num_local_experts;
  logits.resize(static_cast<size_t>(n * e));
  cpu::matmul_nt(x, w.layers[static_cast<size_t>(layer)].gate.data, n,
                 cfg.hidden_size, e, logits.data());
}

void entry_router_logits(const dense_weights& w, int64_t layer,
                         const std::vector<float>& hidden,
                         std::vector<float>& logits) {
  std::vector<float> x;
  moe_input(w, layer, hidden, x);
  const auto n = static_cast<int64_t>(hidden.size()) / w.config.hidden_size;
  router_logits(w, layer, x.data(), n, logits);
}

void route(const dense_weights& w, int64_t layer, const float* x, int64_t n,
           std::vector<int32_t>& topk_ids, std::vector<float>& topk_weights,
           const uint8_t* available, uint8_t* degraded) {
  const auto& cfg = w.config;
  const auto e = cfg.num_local_experts;
  const auto k = cfg.num_experts_per_tok;
  std::vector<float> logits;
  router_logits(w, layer, x, n, logits);
  topk_ids.resize(static_cast<size_t>(n * k));
  topk_weights.resize(static_cast<size_t>(n * k));
  cpu::topk_gating(logits.data(), n, e, k, topk_ids.data(),
                   topk_weights.data(), available, degraded);
}

dispatch_plan plan_dispatch(const std::vector<int32_t>& topk_ids, int64_t n,
                            int64_t k, int64_t n_experts) {
  // Counting sort by expert: stable, so tokens stay ascending within each
  // expert.
  std::vector<uint32_t> counts(static_cast<size_t>(n_experts), 0);
  for (auto id : topk_ids)
    ++counts[static_cast<size_t>(id)];
  std::vector<uint32_t> offsets(counts.size(), 0);
  dispatch_plan plan;
  uint32_t total = 0;
  for (size_t e = 0; e < counts.size(); ++e) {
    offsets[e] = total;
    total += counts[e];
    if (counts[e] > 0) {
      plan.expert_ids.push_back(static_cast<uint32_t>(e));
      plan.row_counts.push_back(counts[e]);
    }
  }
  plan.row_token.resize(static_cast<size_t>(n * k));
  plan.row_slot.resize(static_cast<size_t>(n * k));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) {
      auto e = static_cast<size_t>(topk_ids[static_cast<size_t>(t * k + j)]);
      auto row = offsets[e]++;
      plan.row_token[row] = static_cast<int32_t>(t);
      plan.row_slot[row] = static_cast<int32_t>(j);
    }
  return plan;
}

caf::error run_experts(const expert_weights& experts, int64_t layer,
                       const std::vector<uint32_t>& expert_ids,
                       const std::vector<uint32_t>& row_counts,
                       const float* rows, float* out) {
  const auto& cfg = experts.config();
  const int64_t h = cfg.hidden_size;
  const int64_t ffn = cfg.intermediate_size;
  std::vector<const expert_ffn_weights*> weights;
  std::vector<int64_t> offsets{0};
  for (size_t i = 0; i < expert_ids.size(); ++i) {
    const auto* w = experts.find(layer, expert_ids[i]);
    if (w == nullptr)
      return make_volt_error(volt_errc::missing_expert,
                             "expert " + std::to_string(expert_ids[i])
                               + " of layer " + std::to_string(layer)
                               + " is not hosted here");
    weights.push_back(w);
    offsets.push_back(offsets.back() + row_counts[i]);
  }
  // Experts in parallel, each over all its rows: every row's result is the
  // same whichever thread computes it. Only where the batch is worth waking
  // a thread for: on the 2-vCPU VM a wake-up (30-40 us) made the tiny
  // fixture's batches of 2-128 rows (0.05-3 M multiply-adds) 1.4-2x slower.
  const auto n_experts = static_cast<int64_t>(weights.size());
  const int64_t macs = offsets.back() * 3 * h * ffn;
  const int64_t grain = macs >= parallel_expert_macs ? 1 : n_experts;
  cpu::parallel_for(
    n_experts, std::max<int64_t>(grain, 1), [&](int64_t b, int64_t e) {
      std::vector<float> scratch;
      for (auto i = b; i < e; ++i) {
        const auto* w = weights[static_cast<size_t>(i)];
        const int64_t first = offsets[static_cast<size_t>(i)];
        const int64_t n = offsets[static_cast<size_t>(i) + 1] - first;
        scratch.resize(static_cast<size_t>(2 * n * ffn));
        cpu::swiglu_expert(rows + first * h, w->w1.data, w->w3.data, w->w2.data,
                           n, h, ffn, scratch.data(), out + first * h);
      }
    });
  return caf::none;
}

void combine(const dispatch_plan& plan, const std::vector<float>& topk_weights,
             int64_t k, const float* expert_out, int64_t hidden_size,
             std::vector<float>& hidden) {
  const auto n = static_cast<int64_t>(hidden.size()) / hidden_size;
  // Row of expert output for each (token, slot), then a fixed-order sum per
  // token.
  std::vector<int64_t> row_of(static_cast<size_t>(n * k));
  for (size_t row = 0; row < plan.row_token.size(); ++row)
    row_of[static_cast<size_t>(plan.row_token[row] * k + plan.row_slot[row])]
      = static_cast<int64_t>(row);
  std::vector<float> acc(static_cast<size_t>(hidden_size));
  for (int64_t t = 0; t < n; ++t) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t j = 0; j < k; ++j) {
      const float wgt = topk_weights[static_cast<size_t>(t * k + j)];
      const float* y = expert_out
                       + row_of[static_cast<size_t>(t * k + j)] * hidden_size;
      for (int64_t i = 0; i < hidden_size; ++i)
        acc[i] += wgt * y[i];
    }
    float* dst = hidden.data() + t * hidden_size;
    for (int64_t i = 0; i < hidden_size; ++i)
      dst[i] += acc[i];
  }
}

void final_logits(const dense_weights& w, const std::vector<float>& hidden,
                  const std::vector<int64_t>& rows,
                  std::vector<float>& logits) {
  const auto& cfg = w.config;
  const int64_t h = cfg.hidden_size;
  const auto m = static_cast<int64_t>(rows.size());
  const int64_t vocab = cfg.vocab_size;
  std::vector<float> x(static_cast<size_t>(m * h));
  logits.resize(static_cast<size_t>(m * vocab));
  cpu::parallel_for(m, cpu::rows_per_part(), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i)
      cpu::rms_norm(hidden.data() + rows[i] * h, w.final_norm.data, 1, h,
                    static_cast<float>(cfg.rms_norm_eps), x.data() + i * h);
    cpu::matmul_nt(x.data() + r0 * h, w.lm_head.data, r1 - r0, h, vocab,
                   logits.data() + r0 * vocab);
  });
}

} // namespace volt
