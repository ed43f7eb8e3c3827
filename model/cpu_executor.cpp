#include "model/cpu_executor.hpp"

#include <algorithm>
#include <limits>

#include "base/error.hpp"
#include "gpu/cpu/parallel.hpp"
#include "model/finite.hpp"
#include "model/routing_mask.hpp"
#include "model/sampler.hpp"

namespace volt {

cpu_executor::cpu_executor(std::shared_ptr<const dense_weights> dense,
                           std::shared_ptr<const expert_weights> experts,
                           int64_t page_size, int64_t num_pages)
  : dense_(std::move(dense)), experts_(std::move(experts)),
    cache_(dense_->config.num_hidden_layers, dense_->config.num_key_value_heads,
           dense_->config.head_dim, page_size, num_pages) {
  is_local_.assign(static_cast<size_t>(dense_->config.num_local_experts),
                   false);
  if (experts_)
    for (auto id : experts_->ids()) {
      local_.push_back(id);
      is_local_[id] = true;
    }
}

int64_t cpu_executor::max_step_rows() const {
  // Host memory grows with the step; the engine's prefill_chunk bounds it.
  return std::numeric_limits<int64_t>::max();
}

caf::expected<step_progress> cpu_executor::start(step_request req) {
  const auto& cfg = config();
  auto available = available_experts(req.masked_experts, cfg.num_local_experts);
  if (!available)
    return std::move(available.error());
  if (auto err = check_replayed_routing(req.replayed_routing,
                                        cfg.num_hidden_layers, req.batch.size(),
                                        cfg.num_experts_per_tok,
                                        cfg.num_local_experts))
    return err;
  for (const auto& c : req.copies)
    for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
      auto pages = cache_.layer(l);
      auto n = static_cast<size_t>(pages.page_stride());
      std::copy_n(pages.k + c.src * pages.page_stride(), n,
                  pages.k + c.dst * pages.page_stride());
      std::copy_n(pages.v + c.src * pages.page_stride(), n,
                  pages.v + c.dst * pages.page_stride());
    }
  step_ = std::make_unique<step_state>();
  step_->req = std::move(req);
  if (step_->req.record_routing)
    step_->routing.assign(static_cast<size_t>(cfg.num_hidden_layers
                                              * step_->req.batch.size()
                                              * cfg.num_experts_per_tok),
                          -1);
  step_->available = std::move(*available);
  if (!step_->available.empty())
    step_->degraded_rows.assign(static_cast<size_t>(step_->req.batch.size()),
                                0);
  embed(*dense_, step_->req.batch, step_->hidden);
  return run_layers();
}

caf::expected<step_progress> cpu_executor::resume(std::vector<float> outputs) {
  if (!step_ || step_->remote_entries.empty())
    return make_volt_error(volt_errc::internal,
                           "cpu executor: resume without a step waiting for "
                           "experts");
  auto& st = *step_;
  const auto h = config().hidden_size;
  if (st.remote_entries.size() == st.plan.expert_ids.size()
      && outputs.size() == st.expert_out.size()) {
    // Every entry was remote (a router): the outputs are in entry order.
    st.expert_out = std::move(outputs);
    finish_moe();
    ++st.layer;
    return run_layers();
  }
  int64_t src = 0;
  for (auto entry : st.remote_entries) {
    auto count = static_cast<int64_t>(st.plan.row_counts[entry]);
    std::copy_n(outputs.data() + src * h, count * h,
                st.expert_out.data() + st.first_row[entry] * h);
    src += count;
  }
  finish_moe();
  ++st.layer;
  return run_layers();
}

caf::expected<step_progress> cpu_executor::run_layers() {
  auto& st = *step_;
  const auto& cfg = config();
  std::vector<float> entry_logits;
  for (; st.layer < cfg.num_hidden_layers; ++st.layer) {
    if (observer_) {
      // Experts are computed in place here: the hint has nowhere to go.
      entry_router_logits(*dense_, st.layer, st.hidden, entry_logits);
      (void)observer_->layer_begins(st.layer, entry_logits.data(),
                                    st.req.batch.size());
    }
    attention_block(*dense_, st.layer, cache_, st.req.batch, st.hidden);
    auto remote = begin_moe(st.layer);
    if (!remote.expert_ids.empty()) {
      step_progress waiting;
      waiting.needs = std::move(remote);
      return waiting;
    }
    finish_moe();
  }
  step_progress done;
  done.result = finish_step();
  step_.reset();
  return done;
}

expert_rows cpu_executor::begin_moe(int64_t layer) {
  auto& st = *step_;
  const auto& cfg = config();
  const auto n = st.req.batch.size();
  const auto k = cfg.num_experts_per_tok;
  const auto h = cfg.hidden_size;
  moe_input(*dense_, layer, st.hidden, st.x);
  std::vector<int32_t> ids;
  route(*dense_, layer, st.x.data(), n, ids, st.topk_weights,
        st.available.empty() ? nullptr : st.available.data(),
        st.degraded_rows.empty() ? nullptr : st.degraded_rows.data());
  if (!st.req.replayed_routing.empty())
    std::copy_n(st.req.replayed_routing.begin() + layer * n * k, n * k,
                ids.begin());
  if (st.req.record_routing)
    std::copy(ids.begin(), ids.end(), st.routing.begin() + layer * n * k);
  if (observer_)
    observer_->layer_routed(layer, ids.data(), n);
  st.plan = plan_dispatch(ids, n, k, cfg.num_local_experts);
  const auto entries = st.plan.expert_ids.size();
  st.first_row.resize(entries);
  int64_t offset = 0;
  for (size_t i = 0; i < entries; ++i) {
    st.first_row[i] = offset;
    offset += st.plan.row_counts[i];
  }
  // Every row is written by a local expert or by the remote answer; resize
  // keeps the last layer's storage (a fill would be a pass for nothing).
  st.expert_out.resize(static_cast<size_t>(n * k * h));
  // Grouped input rows of every entry; each expert's rows are computed
  // independently, so running entries in parallel changes no bit.
  std::vector<float> grouped(static_cast<size_t>(n * k * h));
  for (int64_t r = 0; r < n * k; ++r)
    std::copy_n(st.x.data() + st.plan.row_token[r] * h, h,
                grouped.data() + r * h);
  std::vector<size_t> local;
  st.remote_entries.clear();
  for (size_t i = 0; i < entries; ++i)
    (is_local_[st.plan.expert_ids[i]] ? local : st.remote_entries).push_back(i);
  cpu::parallel_for(static_cast<int64_t>(local.size()), 1,
                    [&](int64_t b, int64_t e) {
                      for (auto i = b; i < e; ++i) {
                        auto entry = local[static_cast<size_t>(i)];
                        auto at = st.first_row[entry] * h;
                        // Hosted by construction: the error cannot happen.
                        (void)run_experts(*experts_, layer,
                                          {st.plan.expert_ids[entry]},
                                          {st.plan.row_counts[entry]},
                                          grouped.data() + at,
                                          st.expert_out.data() + at);
                      }
                    });
  expert_rows remote;
  remote.layer = layer;
  for (auto entry : st.remote_entries) {
    remote.expert_ids.push_back(st.plan.expert_ids[entry]);
    remote.row_counts.push_back(st.plan.row_counts[entry]);
  }
  if (local.empty()) {
    // A router's: every row leaves, already in entry order.
    remote.rows = std::move(grouped);
    return remote;
  }
  remote.rows.reserve(static_cast<size_t>(remote.n_rows() * h));
  for (auto entry : st.remote_entries) {
    auto at = grouped.begin() + st.first_row[entry] * h;
    remote.rows.insert(remote.rows.end(), at,
                       at + st.plan.row_counts[entry] * h);
  }
  return remote;
}

void cpu_executor::finish_moe() {
  auto& st = *step_;
  const auto& cfg = config();
  combine(st.plan, st.topk_weights, cfg.num_experts_per_tok,
          st.expert_out.data(), cfg.hidden_size, st.hidden);
  st.remote_entries.clear();
}

step_result cpu_executor::finish_step() {
  auto& st = *step_;
  const auto vocab = config().vocab_size;
  // One logits pass over the union of the rows asked for.
  std::vector<int64_t> rows = st.req.logit_rows;
  rows.insert(rows.end(), st.req.greedy_rows.begin(), st.req.greedy_rows.end());
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  std::vector<float> logits;
  if (!rows.empty())
    final_logits(*dense_, st.hidden, rows, logits);
  auto row_logits = [&](int64_t row) {
    auto i = std::lower_bound(rows.begin(), rows.end(), row) - rows.begin();
    return logits.data() + i * vocab;
  };
  step_result res;
  for (auto row : st.req.greedy_rows) {
    const float* x = row_logits(row);
    res.greedy.push_back(
      first_non_finite(x, static_cast<size_t>(vocab)) >= 0
        ? -1
        : greedy_token(x, vocab));
  }
  res.logits.resize(st.req.logit_rows.size() * static_cast<size_t>(vocab));
  for (size_t i = 0; i < st.req.logit_rows.size(); ++i)
    std::copy_n(row_logits(st.req.logit_rows[i]), vocab,
                res.logits.data() + i * vocab);
  res.routing = std::move(st.routing);
  res.degraded_rows = std::move(st.degraded_rows);
  return res;
}

} // namespace volt
