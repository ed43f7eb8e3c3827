#pragma once

// What the engine tells the prefetch actor after each step.

#include <cstdint>
#include <vector>

#include "caf/meta/type_name.hpp"

namespace volt {

/// One step's prefetch scores. Per layer, `fields` numbers in this order:
/// for each predictor (ngram, cross_layer, combined) the experts it named
/// and how many of them the router then chose; then the distinct experts
/// the router chose. A predictor that could not predict the step (no
/// cross-layer logits) names none.
struct prefetch_report {
  static constexpr size_t fields = 7;
  std::vector<uint32_t> counts; // [n_layers, fields]
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, prefetch_report& x) {
  return f(caf::meta::type_name("volt.prefetch_report"), x.counts);
}

} // namespace volt
