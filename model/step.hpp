#pragma once

// What one engine step asks of a model executor and what comes back: the
// batch's rows, the KV page copies to make first, which rows are sampled
// greedily or need their logits, and the expert rows that other nodes must
// compute in the middle of a layer.

#include <cstdint>
#include <vector>

#include "model/page_table.hpp"

namespace volt {

/// The tokens computed in one engine step, grouped by sequence.
struct step_batch {
  /// One sequence's contiguous rows of the batch.
  struct sequence {
    int64_t first_row = 0;
    int64_t n_rows = 0;
    /// Physical KV page of each logical page, covering every row's position.
    std::vector<int32_t> block_table;
    /// Names the sequence from one step to the next (the prefetch predictor
    /// keeps its recent tokens and experts under it).
    uint64_t key = 0;
  };
  std::vector<int32_t> token_ids; // [n]
  std::vector<int32_t> positions; // [n]
  std::vector<sequence> sequences;

  int64_t size() const {
    return static_cast<int64_t>(token_ids.size());
  }
};

/// One engine step for an executor.
struct step_request {
  step_batch batch;
  /// Page copies (copy-on-write of shared pages), every layer, in order,
  /// before any K/V of the step is written.
  std::vector<page_copy> copies;
  /// Rows whose greedy token (argmax of the logits) is wanted.
  std::vector<int64_t> greedy_rows;
  /// Rows whose logits are wanted (sampling with a temperature, the prompt's
  /// last logits, or every prompt position when a request asks).
  std::vector<int64_t> logit_rows;
  /// Return the top-k experts of every row in every layer.
  bool record_routing = false;
  /// Experts taken out of routing in every layer, ascending (they have no
  /// live host, or a reference run masks them): rows keep their other
  /// chosen experts, renormalised (see cpu::topk_gating). At least one
  /// expert must stay.
  std::vector<uint32_t> masked_experts;
  /// Benchmarks only: each row's experts in every layer, taken instead of
  /// its router's choice (routing replayed from a trace recorded on another
  /// model); each row keeps its router's top-k weights, in rank order. Empty:
  /// the routers choose. [n_layers, n, k]
  std::vector<int32_t> replayed_routing;
};

/// What a GPU expert cache did during one layer of a step.
struct expert_cache_layer {
  /// Experts the layer needed that were resident (or staged in time to be
  /// found there), and those it did not find (loaded, or computed on the
  /// host).
  int64_t hits = 0;
  int64_t misses = 0;
  /// Misses the host computed (from the pinned copy), and of those the ones
  /// split with the device (the host computed part of their FFN).
  int64_t host_computed = 0;
  int64_t host_split = 0;
  /// Bytes copied to the device: staged ahead of the routing, and loaded
  /// on a miss (waited for, or in the background while the host computed
  /// it).
  int64_t staged_bytes = 0;
  int64_t loaded_bytes = 0;
  /// Time the layer's experts waited after its routing: for copies, and for
  /// the host's experts.
  double stall_seconds = 0;

  /// Adds another layer's or step's counts (totals over steps or layers).
  expert_cache_layer& operator+=(const expert_cache_layer& o) {
    hits += o.hits;
    misses += o.misses;
    host_computed += o.host_computed;
    host_split += o.host_split;
    staged_bytes += o.staged_bytes;
    loaded_bytes += o.loaded_bytes;
    stall_seconds += o.stall_seconds;
    return *this;
  }
};

/// What a finished step returns.
struct step_result {
  /// [greedy_rows.size()]; -1 for a row whose logits hold a NaN or an
  /// infinity (no token can be picked from it).
  std::vector<int32_t> greedy;
  std::vector<float> logits; // [logit_rows.size(), vocab]
  std::vector<int32_t> routing; // [n_layers, n, k] when record_routing
  /// [n] when masked_experts is not empty: 1 for a row that lost one of its
  /// chosen experts in some layer.
  std::vector<uint8_t> degraded_rows;
  /// [n_layers] from an executor with an expert cache; empty otherwise.
  std::vector<expert_cache_layer> expert_cache;
};

/// Rows of one layer that experts on other nodes must compute before the
/// executor can go on: grouped by expert, ascending expert id, the MoE input
/// of each (token, slot) routed to it.
struct expert_rows {
  int64_t layer = 0;
  std::vector<uint32_t> expert_ids;
  std::vector<uint32_t> row_counts; // [expert_ids.size()]
  std::vector<float> rows; // [sum(row_counts), hidden] f32
  /// Experts of layer + 1 the prefetch predictor expects the step to use,
  /// best first (the engine fills it; empty without a predictor): the hosts
  /// of the experts get it with their rows.
  std::vector<uint32_t> stage_next;

  int64_t n_rows() const {
    int64_t n = 0;
    for (auto c : row_counts)
      n += c;
    return n;
  }
};

} // namespace volt
