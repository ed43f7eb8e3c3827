#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "model/model_config.hpp"
#include "model/routing_observer.hpp"
#include "model/step.hpp"
#include "prefetch/ngram_predictor.hpp"
#include "prefetch/prefetch_counts.hpp"
#include "prefetch/rank_calibration.hpp"

namespace volt::prefetch {

/// Tunables of the predictor (from [prefetch]).
struct predictor_options {
  /// Tokens in the n-gram's longest context, the last known one included.
  int64_t ngram_order = 3;
  /// How many tokens ahead the n-gram predicts: 1 predicts a row's experts
  /// from its own token and the previous position's experts; L predicts
  /// them L - 1 steps earlier, from the tokens up to L - 1 positions back
  /// and the experts of the position L back.
  int64_t lookahead_tokens = 1;
  /// Most experts staged per layer and step; 0: twice the model's top-k.
  int64_t max_staged = 0;
  /// An expert is staged only while the chance that the step uses it, as
  /// measured for its rank, is at least this.
  float min_chance = 0.1f;
};

/// The predictors, each scored on its own.
enum class predictor_kind : uint8_t {
  /// Tokens and earlier experts to experts (ngram_predictor).
  ngram,
  /// The layer's router applied to the hidden state entering the layer.
  cross_layer,
  /// Both, ranked by how often each rank pair was right at the layer: what
  /// is staged.
  combined,
};

constexpr size_t predictor_count = 3;

/// "ngram", "cross_layer" or "combined".
const char* to_string(predictor_kind x);

/// This step's counts of every predictor at every layer.
struct step_scores {
  /// [predictor_count][n_layers]
  std::array<std::vector<prefetch_counts>, predictor_count> by_predictor;
};

/// Learns online which experts each layer of a step will use and says which
/// to stage before the layer's experts run: per layer a list, best first, of
/// at most max_staged experts. Three predictors rank every row's experts:
/// the n-gram (known when the step is planned), the cross-layer gate (known
/// when the layer begins) and their combination. For each it measures how
/// often an expert of each rank is then used, and stages an expert only
/// while that chance, over the step's rows, reaches min_chance: where a
/// predictor is often wrong it stages fewer (and more again once it is
/// right). Scores every step against the router's choices. A plain object
/// driven by the executor's thread: begin_step, then layer_begins and
/// layer_routed for every layer in order, then end_step (or abandon_step).
class expert_predictor : public routing_observer {
public:
  expert_predictor(const model_config& cfg, predictor_options options);

  const predictor_options& options() const {
    return options_;
  }

  /// A step over `batch` begins: predicts every layer from the n-gram.
  void begin_step(const step_batch& batch);

  /// The n-gram's staging list for `layer` of the step begun: known before
  /// the step runs, for a cache that stages a whole step ahead.
  const std::vector<uint32_t>& early_stage(int64_t layer) const;

  const std::vector<uint32_t>& layer_begins(int64_t layer,
                                            const float* entry_logits,
                                            int64_t n) override;

  void layer_routed(int64_t layer, const int32_t* topk_ids,
                    int64_t n) override;

  /// The step is done: its rows become context for later steps. Returns
  /// the step's counts.
  const step_scores& end_step();

  /// The step failed: nothing of it is remembered.
  void abandon_step();

  /// Counts of predictor `p` at `layer` since the start.
  const prefetch_counts& totals(predictor_kind p, int64_t layer) const {
    return totals_.by_predictor[static_cast<size_t>(p)]
                               [static_cast<size_t>(layer)];
  }

private:
  /// One row of the step being run.
  struct row_state {
    uint64_t sequence = 0;
    int64_t position = 0;
    int32_t token = 0;
    row_context context;
  };

  /// A sequence's recent positions, oldest first.
  struct history {
    struct entry {
      int64_t position;
      int32_t token;
      std::vector<int32_t> experts; // [n_layers, k], each layer ascending
    };
    std::deque<entry> entries;
    uint64_t last_step = 0;
  };

  row_context context_of(const step_batch& batch, size_t seq, int64_t row);

  /// Ranks every row's experts by `score` [n, n_experts] into
  /// ranked [n, ranks].
  void rank_rows(const float* score, std::vector<uint32_t>& ranked) const;

  /// The experts to stage for the step's rows given their rankings and the
  /// chances measured for each rank.
  void stage(int64_t layer, const std::vector<uint32_t>& ranked,
             const rank_calibration& chances,
             std::vector<uint32_t>& out) const;

  /// Ranks experts by the measured chance of their (n-gram rank,
  /// cross-layer rank) pair.
  void combine(int64_t layer, bool with_cross);

  model_config cfg_;
  predictor_options options_;
  int64_t ranks_; // ranks tracked per row: max_staged
  ngram_predictor ngram_;
  std::array<rank_calibration, predictor_count> chances_;
  /// Hits and tries of each (n-gram rank, cross-layer rank) pair per layer,
  /// rank `ranks_` standing for "not ranked": [n_layers, (ranks+1)^2].
  std::vector<float> pair_hits_;
  std::vector<float> pair_tries_;
  std::unordered_map<uint64_t, history> histories_;
  uint64_t step_count_ = 0;

  // The step in progress.
  bool in_step_ = false;
  std::vector<row_state> rows_;
  /// Every row's ranking per predictor and layer: [n_layers][n, ranks].
  std::array<std::vector<std::vector<uint32_t>>, predictor_count> ranked_;
  /// Staging list per predictor and layer.
  std::array<std::vector<std::vector<uint32_t>>, predictor_count> staged_;
  std::vector<int32_t> routing_; // [n_layers, n, k]
  step_scores scores_;
  step_scores totals_;
  std::vector<float> scratch_;
};

} // namespace volt::prefetch
