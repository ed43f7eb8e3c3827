#pragma once

#include <cstdint>
#include <vector>

namespace volt::prefetch {

/// How well one predictor's staged experts matched the router's choices at
/// one layer, summed over steps. Prometheus gets the three counts and divides
/// them itself.
struct prefetch_counts {
  /// Steps scored.
  uint64_t steps = 0;
  /// Experts the predictor named (for the combination: told the cache to
  /// stage).
  uint64_t predicted = 0;
  /// Named experts that the router then chose for some row of the step.
  uint64_t hits = 0;
  /// Distinct experts the router chose, per step.
  uint64_t actual = 0;

  /// Scores one step: `predicted` and `used` are expert ids without
  /// duplicates, `used` ascending.
  void add(const std::vector<uint32_t>& predicted,
           const std::vector<uint32_t>& used);

  /// hits / predicted; 0 before anything was predicted.
  double precision() const;

  /// hits / actual; 0 before anything was routed.
  double recall() const;

  /// Experts named per step.
  double mean_predicted() const;

  prefetch_counts& operator+=(const prefetch_counts& other);
};

} // namespace volt::prefetch
