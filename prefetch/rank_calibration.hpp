#pragma once

#include <cstdint>
#include <vector>

namespace volt::prefetch {

/// How often the expert that a predictor ranks r-th for a row at a layer is
/// then chosen for that row: the chance that staging it pays off. Each rank
/// starts at one hit in two tries, so a new predictor stages up to its limit
/// until it has seen enough to back off, and follows the recent past: a
/// rank's counts halve once it has `window` tries.
class rank_calibration {
public:
  rank_calibration(int64_t n_layers, int64_t ranks, float window = 512);

  /// Ranks tracked per layer.
  int64_t ranks() const {
    return ranks_;
  }

  /// Chance that the expert ranked `rank` at `layer` is chosen; 0 beyond the
  /// tracked ranks.
  float chance(int64_t layer, int64_t rank) const;

  /// One row at `layer`: its ranking (best first, at most ranks()) against
  /// the k experts the router chose for it.
  void observe(int64_t layer, const uint32_t* ranked, int64_t count,
               const int32_t* chosen, int64_t k);

private:
  int64_t ranks_;
  float window_;
  std::vector<float> hits_; // [n_layers, ranks]
  std::vector<float> tries_; // [n_layers, ranks]
};

} // namespace volt::prefetch
