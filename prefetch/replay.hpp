#pragma once

// Runs a model over a token stream one token per sequence per step, as
// decoding does, with the next token taken from the stream rather than
// sampled (teacher forcing), and scores the prefetch predictor against the
// experts the router chose: what `volt-node bench prefetch` reports.

#include <array>
#include <cstdint>
#include <vector>

#include "caf/expected.hpp"
#include "model/executor.hpp"
#include "prefetch/expert_predictor.hpp"
#include "prefetch/routing_trace.hpp"

namespace volt::prefetch {

/// How the stream is cut and batched.
struct replay_options {
  /// Tokens per sequence: the stream is cut into windows of this many (at
  /// most the model's context), each a sequence of its own.
  int64_t window = 512;
  /// Sequences decoded together in one step.
  int64_t batch = 1;
  /// Each token's experts come from this trace (token i of the stream is
  /// the trace's token i) instead of the model's routers; null: the routers
  /// choose.
  const routing_trace* trace = nullptr;
  /// The predictor watches each layer as it runs (an expert cache then
  /// learns from the routing what to evict, and stages the predictor's
  /// guesses if told to); false: it scores the finished steps only and a
  /// cache evicts the least recently used.
  bool watch_layers = true;
  /// Keep every token's routing in replay_result::routing.
  bool record = false;
};

/// Pages of `page_size` tokens that `replay` needs.
int64_t replay_pages(const replay_options& options, int64_t page_size);

/// What a replay measured.
struct replay_result {
  int64_t tokens = 0;
  int64_t steps = 0;
  /// Every predictor's counts per layer, summed over the run.
  step_scores scores;
  /// The simplest guess, for reference: each row's experts are those its
  /// sequence's previous token chose at the layer. Per layer.
  std::vector<prefetch_counts> previous;
  /// Seconds in the predictor's calls, and in whole steps (both included).
  double predictor_seconds = 0;
  double step_seconds = 0;
  /// What an expert cache did, per layer, summed over the steps; empty
  /// without one.
  std::vector<expert_cache_layer> expert_cache;
  /// With replay_options::record: [tokens, layers, k], each token of the
  /// stream's experts per layer.
  std::vector<int32_t> routing;
};

/// Runs `exec` (its own KV pool, at least replay_pages() pages) over `ids`
/// with `predictor` watching; errors come from the executor.
caf::expected<replay_result> replay(model_executor& exec,
                                    expert_predictor& predictor,
                                    const std::vector<int32_t>& ids,
                                    const replay_options& options);

} // namespace volt::prefetch
