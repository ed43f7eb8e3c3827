#include "prefetch/expert_predictor.hpp"

#include <algorithm>
#include <numeric>

namespace volt::prefetch {

namespace {

/// Steps a sequence may miss before its history is dropped (it finished, or
/// waits preempted and will be recomputed anyway).
constexpr uint64_t history_steps = 64;

/// A rank pair's counts halve at this many tries: the combination follows
/// the recent past as the rank calibrations do.
constexpr float pair_window = 512.0f;

} // namespace

const char* to_string(predictor_kind x) {
  switch (x) {
    case predictor_kind::ngram:
      return "ngram";
    case predictor_kind::cross_layer:
      return "cross_layer";
    default:
      return "combined";
  }
}

expert_predictor::expert_predictor(const model_config& cfg,
                                   predictor_options options)
  : cfg_(cfg), options_(options),
    ranks_(std::min(options.max_staged > 0 ? options.max_staged
                                           : 2 * cfg.num_experts_per_tok,
                    cfg.num_local_experts)),
    ngram_(cfg.num_local_experts, cfg.num_experts_per_tok,
           options.ngram_order),
    chances_{rank_calibration{cfg.num_hidden_layers, ranks_},
             rank_calibration{cfg.num_hidden_layers, ranks_},
             rank_calibration{cfg.num_hidden_layers, ranks_}} {
  options_.max_staged = ranks_;
  options_.ngram_order = ngram_.order();
  options_.lookahead_tokens = std::max<int64_t>(options_.lookahead_tokens, 1);
  const auto cells = static_cast<size_t>(cfg.num_hidden_layers * (ranks_ + 1)
                                         * (ranks_ + 1));
  pair_hits_.assign(cells, 1.0f);
  pair_tries_.assign(cells, 2.0f);
  const auto layers = static_cast<size_t>(cfg.num_hidden_layers);
  for (size_t p = 0; p < predictor_count; ++p) {
    ranked_[p].resize(layers);
    staged_[p].resize(layers);
    totals_.by_predictor[p].resize(layers);
    scores_.by_predictor[p].resize(layers);
  }
}

row_context expert_predictor::context_of(const step_batch& batch, size_t seq,
                                         int64_t row) {
  const auto& s = batch.sequences[seq];
  const int64_t first = batch.positions[static_cast<size_t>(s.first_row)];
  const int64_t p = batch.positions[static_cast<size_t>(row)];
  const history* h = nullptr;
  if (auto i = histories_.find(s.key); i != histories_.end())
    h = &i->second;
  // An entry of the history, valid only before this step's first row (a
  // recomputed sequence's later entries are stale).
  auto earlier = [&](int64_t pos) -> const history::entry* {
    if (!h || h->entries.empty() || pos >= first)
      return nullptr;
    auto index = pos - h->entries.front().position;
    if (index < 0 || index >= static_cast<int64_t>(h->entries.size()))
      return nullptr;
    return &h->entries[static_cast<size_t>(index)];
  };
  row_context ctx;
  const int64_t last_known = p - options_.lookahead_tokens + 1;
  uint64_t hash = 0;
  for (int64_t j = 0; j < options_.ngram_order; ++j) {
    auto pos = last_known - j;
    int32_t token;
    if (pos >= first && pos <= p) {
      token = batch.token_ids[static_cast<size_t>(s.first_row + pos - first)];
    } else if (auto e = earlier(pos)) {
      token = e->token;
    } else {
      break;
    }
    hash = extend_token_hash(hash, token);
    ctx.token_hashes.push_back(hash);
  }
  if (auto e = earlier(p - options_.lookahead_tokens))
    ctx.previous_experts = e->experts;
  return ctx;
}

void expert_predictor::rank_rows(const float* score,
                                 std::vector<uint32_t>& ranked) const {
  const auto e = cfg_.num_local_experts;
  const auto n = static_cast<int64_t>(rows_.size());
  ranked.resize(static_cast<size_t>(n * ranks_));
  std::vector<uint32_t> order(static_cast<size_t>(e));
  for (int64_t r = 0; r < n; ++r) {
    const float* s = score + r * e;
    std::iota(order.begin(), order.end(), 0u);
    std::partial_sort(order.begin(), order.begin() + ranks_, order.end(),
                      [&](uint32_t a, uint32_t b) {
                        return s[a] > s[b] || (s[a] == s[b] && a < b);
                      });
    std::copy_n(order.begin(), ranks_, ranked.begin() + r * ranks_);
  }
}

void expert_predictor::stage(int64_t layer, const std::vector<uint32_t>& ranked,
                             const rank_calibration& chances,
                             std::vector<uint32_t>& out) const {
  const auto e = static_cast<size_t>(cfg_.num_local_experts);
  // The chance that no row uses an expert, rows taken as independent.
  std::vector<float> unused(e, 1.0f);
  for (size_t i = 0; i < ranked.size(); ++i)
    unused[ranked[i]] *= 1.0f
                         - chances.chance(layer, static_cast<int64_t>(
                                                   i % static_cast<size_t>(
                                                         ranks_)));
  out.clear();
  for (uint32_t x = 0; x < e; ++x)
    if (1.0f - unused[x] >= options_.min_chance)
      out.push_back(x);
  std::sort(out.begin(), out.end(), [&](uint32_t a, uint32_t b) {
    return unused[a] < unused[b] || (unused[a] == unused[b] && a < b);
  });
  if (static_cast<int64_t>(out.size()) > ranks_)
    out.resize(static_cast<size_t>(ranks_));
}

void expert_predictor::combine(int64_t layer, bool with_cross) {
  const auto e = cfg_.num_local_experts;
  const auto n = static_cast<int64_t>(rows_.size());
  const auto side = ranks_ + 1;
  const float* hits = pair_hits_.data() + layer * side * side;
  const float* tries = pair_tries_.data() + layer * side * side;
  const auto& by_ngram = ranked_[0][static_cast<size_t>(layer)];
  const auto& by_cross = ranked_[1][static_cast<size_t>(layer)];
  auto& out = ranked_[2][static_cast<size_t>(layer)];
  out.resize(static_cast<size_t>(n * ranks_));
  std::vector<int64_t> rn(static_cast<size_t>(e));
  std::vector<int64_t> rc(static_cast<size_t>(e));
  std::vector<uint32_t> candidates;
  std::vector<float> score(static_cast<size_t>(e));
  for (int64_t r = 0; r < n; ++r) {
    std::fill(rn.begin(), rn.end(), ranks_);
    std::fill(rc.begin(), rc.end(), ranks_);
    for (int64_t i = 0; i < ranks_; ++i) {
      rn[by_ngram[static_cast<size_t>(r * ranks_ + i)]] = i;
      if (with_cross)
        rc[by_cross[static_cast<size_t>(r * ranks_ + i)]] = i;
    }
    candidates.clear();
    for (int64_t x = 0; x < e; ++x) {
      if (std::min(rn[x], rc[x]) == ranks_)
        continue;
      auto cell = rn[x] * side + rc[x];
      score[x] = hits[cell] / tries[cell];
      candidates.push_back(static_cast<uint32_t>(x));
    }
    std::sort(candidates.begin(), candidates.end(),
              [&](uint32_t a, uint32_t b) {
                if (score[a] != score[b])
                  return score[a] > score[b];
                auto ba = std::min(rn[a], rc[a]);
                auto bb = std::min(rn[b], rc[b]);
                if (ba != bb)
                  return ba < bb;
                return a < b;
              });
    candidates.resize(static_cast<size_t>(ranks_));
    std::copy(candidates.begin(), candidates.end(),
              out.begin() + r * ranks_);
  }
}

void expert_predictor::begin_step(const step_batch& batch) {
  in_step_ = true;
  rows_.clear();
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const auto& seq = batch.sequences[s];
    for (auto r = seq.first_row; r < seq.first_row + seq.n_rows; ++r)
      rows_.push_back(row_state{seq.key,
                                batch.positions[static_cast<size_t>(r)],
                                batch.token_ids[static_cast<size_t>(r)],
                                context_of(batch, s, r)});
  }
  const auto n = static_cast<int64_t>(rows_.size());
  const auto e = cfg_.num_local_experts;
  for (auto& per_layer : scores_.by_predictor)
    std::fill(per_layer.begin(), per_layer.end(), prefetch_counts{});
  routing_.assign(static_cast<size_t>(cfg_.num_hidden_layers * n
                                      * cfg_.num_experts_per_tok),
                  -1);
  scratch_.resize(static_cast<size_t>(n * e));
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    for (int64_t r = 0; r < n; ++r)
      ngram_.predict(l, rows_[static_cast<size_t>(r)].context,
                     scratch_.data() + r * e);
    auto& ranked = ranked_[0][static_cast<size_t>(l)];
    rank_rows(scratch_.data(), ranked);
    stage(l, ranked, chances_[0], staged_[0][static_cast<size_t>(l)]);
    for (size_t p : {size_t{1}, size_t{2}}) {
      ranked_[p][static_cast<size_t>(l)].clear();
      staged_[p][static_cast<size_t>(l)].clear();
    }
  }
}

const std::vector<uint32_t>& expert_predictor::early_stage(int64_t layer) const {
  return staged_[0][static_cast<size_t>(layer)];
}

const std::vector<uint32_t>&
expert_predictor::layer_begins(int64_t layer, const float* entry_logits,
                               int64_t n) {
  const auto l = static_cast<size_t>(layer);
  bool with_cross = entry_logits != nullptr
                    && n == static_cast<int64_t>(rows_.size());
  if (with_cross) {
    rank_rows(entry_logits, ranked_[1][l]);
    stage(layer, ranked_[1][l], chances_[1], staged_[1][l]);
  } else {
    ranked_[1][l].clear();
    staged_[1][l].clear();
  }
  combine(layer, with_cross);
  stage(layer, ranked_[2][l], chances_[2], staged_[2][l]);
  return staged_[2][l];
}

void expert_predictor::layer_routed(int64_t layer, const int32_t* topk_ids,
                                    int64_t n) {
  const auto l = static_cast<size_t>(layer);
  const auto k = cfg_.num_experts_per_tok;
  if (!in_step_ || n != static_cast<int64_t>(rows_.size()))
    return;
  if (ranked_[2][l].size() != static_cast<size_t>(n * ranks_))
    (void)layer_begins(layer, nullptr, n);
  std::copy_n(topk_ids, n * k, routing_.begin() + layer * n * k);
  std::vector<uint32_t> used(topk_ids, topk_ids + n * k);
  std::sort(used.begin(), used.end());
  used.erase(std::unique(used.begin(), used.end()), used.end());
  for (size_t p = 0; p < predictor_count; ++p) {
    const auto& ranked = ranked_[p][l];
    if (ranked.empty())
      continue; // no cross-layer logits this step
    scores_.by_predictor[p][l].add(staged_[p][l], used);
    for (int64_t r = 0; r < n; ++r)
      chances_[p].observe(layer, ranked.data() + r * ranks_, ranks_,
                          topk_ids + r * k, k);
  }
  // How often each (n-gram rank, cross-layer rank) pair was chosen.
  const auto side = ranks_ + 1;
  float* hits = pair_hits_.data() + layer * side * side;
  float* tries = pair_tries_.data() + layer * side * side;
  const auto& by_ngram = ranked_[0][l];
  const auto& by_cross = ranked_[1][l];
  const auto e = cfg_.num_local_experts;
  std::vector<int64_t> rn(static_cast<size_t>(e));
  std::vector<int64_t> rc(static_cast<size_t>(e));
  for (int64_t r = 0; r < n; ++r) {
    std::fill(rn.begin(), rn.end(), ranks_);
    std::fill(rc.begin(), rc.end(), ranks_);
    for (int64_t i = 0; i < ranks_; ++i) {
      rn[by_ngram[static_cast<size_t>(r * ranks_ + i)]] = i;
      if (!by_cross.empty())
        rc[by_cross[static_cast<size_t>(r * ranks_ + i)]] = i;
    }
    const int32_t* chosen = topk_ids + r * k;
    for (int64_t x = 0; x < e; ++x) {
      if (std::min(rn[x], rc[x]) == ranks_)
        continue;
      auto cell = static_cast<size_t>(rn[x] * side + rc[x]);
      if (tries[cell] >= pair_window) {
        hits[cell] *= 0.5f;
        tries[cell] *= 0.5f;
      }
      tries[cell] += 1.0f;
      if (std::find(chosen, chosen + k, x) != chosen + k)
        hits[cell] += 1.0f;
    }
    ngram_.learn(layer, rows_[static_cast<size_t>(r)].context, chosen);
  }
}

const step_scores& expert_predictor::end_step() {
  const auto n = static_cast<int64_t>(rows_.size());
  const auto k = cfg_.num_experts_per_tok;
  const auto layers = cfg_.num_hidden_layers;
  ++step_count_;
  const auto keep = static_cast<size_t>(options_.ngram_order
                                        + options_.lookahead_tokens);
  for (int64_t r = 0; r < n; ++r) {
    const auto& row = rows_[static_cast<size_t>(r)];
    auto& h = histories_[row.sequence];
    h.last_step = step_count_;
    while (!h.entries.empty() && h.entries.back().position >= row.position)
      h.entries.pop_back(); // recomputed positions
    if (!h.entries.empty() && h.entries.back().position + 1 != row.position)
      h.entries.clear();
    history::entry entry{row.position, row.token,
                         std::vector<int32_t>(static_cast<size_t>(layers * k))};
    for (int64_t l = 0; l < layers; ++l) {
      auto at = entry.experts.begin() + l * k;
      std::copy_n(routing_.begin() + (l * n + r) * k, k, at);
      std::sort(at, at + k);
    }
    h.entries.push_back(std::move(entry));
    while (h.entries.size() > keep)
      h.entries.pop_front();
  }
  if (step_count_ % history_steps == 0) {
    for (auto i = histories_.begin(); i != histories_.end();) {
      if (i->second.last_step + history_steps < step_count_)
        i = histories_.erase(i);
      else
        ++i;
    }
  }
  for (size_t p = 0; p < predictor_count; ++p)
    for (size_t l = 0; l < static_cast<size_t>(layers); ++l)
      totals_.by_predictor[p][l] += scores_.by_predictor[p][l];
  in_step_ = false;
  return scores_;
}

void expert_predictor::abandon_step() {
  in_step_ = false;
  rows_.clear();
}

} // namespace volt::prefetch
