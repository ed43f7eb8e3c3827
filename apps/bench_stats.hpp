#pragma once

// Order statistics that the benchmarks report.

#include <algorithm>
#include <vector>

namespace volt {

/// The `q` quantile (0 to 1) of `xs` by nearest rank, e.g. 0.5 for the
/// median; `xs` must not be empty.
inline double percentile(std::vector<double> xs, double q) {
  std::sort(xs.begin(), xs.end());
  return xs[std::min(xs.size() - 1, static_cast<size_t>(q * xs.size()))];
}

} // namespace volt
