#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace volt::prefetch {

/// What the n-gram predictor knows of a row when its step is planned.
struct row_context {
  /// Hashes of the last known tokens: token_hashes[j] covers the j + 1
  /// tokens that end at the last known one (the row's own token with a
  /// lookahead of 1). At most the predictor's order.
  std::vector<uint64_t> token_hashes;
  /// The experts chosen at every layer for the position `lookahead` before
  /// the row, each layer's ascending: [n_layers, k]; empty when unknown (a
  /// new sequence, or that position is in the same step).
  std::vector<int32_t> previous_experts;
};

/// Hash of a token appended to the hash of the tokens before it.
uint64_t extend_token_hash(uint64_t hash, int32_t token);

/// Learns online which experts each layer chooses after a context of tokens
/// and the experts an earlier position chose there, and predicts them as
/// probabilities. Contexts nest from the layer alone through the last token
/// and the earlier position's experts to the last `order` tokens with them;
/// each level's counts refine the one below (Witten-Bell interpolation), so
/// an unseen long context falls back smoothly. Counts live in a table of
/// fixed size (a new context evicts the less used of two that share a slot)
/// and halve once a context has seen many rows, so that recent routing
/// weighs more.
class ngram_predictor {
public:
  /// Tables of at most `table_bytes` for layers of `n_experts` experts, `k`
  /// per token; contexts of at most `order` tokens (1 to max_order).
  ngram_predictor(int64_t n_experts, int64_t k, int64_t order,
                  size_t table_bytes = size_t{16} << 20);

  static constexpr int64_t max_order = 16;

  int64_t order() const {
    return order_;
  }

  /// Probabilities of every expert at `layer` for a row with context `ctx`.
  /// - probs (out): [n_experts], summing to 1
  void predict(int64_t layer, const row_context& ctx, float* probs) const;

  /// Adds the row's routing at `layer` to every level of its context.
  /// - chosen (in): [k]
  void learn(int64_t layer, const row_context& ctx, const int32_t* chosen);

private:
  /// Keys of the context levels of a row at a layer, most general first;
  /// returns how many.
  size_t level_keys(int64_t layer, const row_context& ctx,
                    uint64_t* keys) const;

  /// The slot holding `key`, or -1.
  int64_t find(uint64_t key) const;

  /// The slot for `key`, taking over the less used of its two when absent.
  int64_t claim(uint64_t key);

  int64_t n_experts_;
  int64_t k_;
  int64_t order_;
  uint64_t mask_; // slots - 1, slots a power of two
  std::vector<uint64_t> keys_; // [slots], 0: empty
  std::vector<float> totals_; // [slots]
  std::vector<float> counts_; // [slots, n_experts]
};

} // namespace volt::prefetch
