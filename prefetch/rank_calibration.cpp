#include "prefetch/rank_calibration.hpp"

#include <algorithm>

namespace volt::prefetch {

rank_calibration::rank_calibration(int64_t n_layers, int64_t ranks,
                                   float window)
  : ranks_(ranks), window_(window),
    hits_(static_cast<size_t>(n_layers * ranks), 1.0f),
    tries_(static_cast<size_t>(n_layers * ranks), 2.0f) {
}

float rank_calibration::chance(int64_t layer, int64_t rank) const {
  if (rank < 0 || rank >= ranks_)
    return 0.0f;
  auto i = static_cast<size_t>(layer * ranks_ + rank);
  return hits_[i] / tries_[i];
}

void rank_calibration::observe(int64_t layer, const uint32_t* ranked,
                               int64_t count, const int32_t* chosen,
                               int64_t k) {
  count = std::min(count, ranks_);
  for (int64_t r = 0; r < count; ++r) {
    auto i = static_cast<size_t>(layer * ranks_ + r);
    if (tries_[i] >= window_) {
      hits_[i] *= 0.5f;
      tries_[i] *= 0.5f;
    }
    tries_[i] += 1.0f;
    if (std::find(chosen, chosen + k, static_cast<int32_t>(ranked[r]))
        != chosen + k)
      hits_[i] += 1.0f;
  }
}

} // namespace volt::prefetch
