#include "prefetch/prefetch_counts.hpp"

#include <algorithm>

namespace volt::prefetch {

namespace {

double ratio(uint64_t num, uint64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

} // namespace

void prefetch_counts::add(const std::vector<uint32_t>& named,
                          const std::vector<uint32_t>& used) {
  ++steps;
  predicted += named.size();
  actual += used.size();
  for (auto e : named)
    if (std::binary_search(used.begin(), used.end(), e))
      ++hits;
}

double prefetch_counts::precision() const {
  return ratio(hits, predicted);
}

double prefetch_counts::recall() const {
  return ratio(hits, actual);
}

double prefetch_counts::mean_predicted() const {
  return ratio(predicted, steps);
}

prefetch_counts& prefetch_counts::operator+=(const prefetch_counts& other) {
  steps += other.steps;
  predicted += other.predicted;
  hits += other.hits;
  actual += other.actual;
  return *this;
}

} // namespace volt::prefetch
