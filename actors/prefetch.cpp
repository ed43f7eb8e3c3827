#include "actors/prefetch.hpp"

#include <algorithm>
#include <cstdio>
#include <string>

#include "actors/unexpected_messages.hpp"
#include "base/log.hpp"

namespace volt {

namespace {

using prefetch::predictor_count;
using prefetch::predictor_kind;

/// Overall counts of predictor `p` over every layer.
prefetch::prefetch_counts overall(const prefetch_state& st, size_t p) {
  prefetch::prefetch_counts sum;
  for (const auto& layer : st.totals)
    sum += layer[p];
  return sum;
}

std::string status_line(const prefetch_state& st) {
  auto combined = overall(st, static_cast<size_t>(predictor_kind::combined));
  std::string line = "prefetch: " + std::to_string(combined.steps
                                                   / std::max<size_t>(
                                                     st.totals.size(), 1))
                     + " steps";
  for (size_t p = 0; p < predictor_count; ++p) {
    auto c = overall(st, p);
    char buf[160];
    std::snprintf(buf, sizeof(buf),
                  ", %s recall %.3f precision %.3f (%.2f per layer)",
                  to_string(static_cast<predictor_kind>(p)), c.recall(),
                  c.precision(), c.mean_predicted());
    line += buf;
  }
  return line;
}

} // namespace

prefetch_report make_prefetch_report(const prefetch::step_scores& scores) {
  const auto layers = scores.by_predictor[0].size();
  prefetch_report report;
  report.counts.reserve(layers * prefetch_report::fields);
  for (size_t l = 0; l < layers; ++l) {
    for (size_t p = 0; p < predictor_count; ++p) {
      const auto& c = scores.by_predictor[p][l];
      report.counts.push_back(static_cast<uint32_t>(c.predicted));
      report.counts.push_back(static_cast<uint32_t>(c.hits));
    }
    // Every predictor that ran saw the same routing.
    report.counts.push_back(static_cast<uint32_t>(
      scores.by_predictor[static_cast<size_t>(predictor_kind::combined)][l]
        .actual));
  }
  return report;
}

prefetch_actor::behavior_type prefetch_tracker(prefetch_pointer self, int64_t n_layers,
                                       std::shared_ptr<node_metrics> metrics) {
  auto& st = self->state;
  st.totals.resize(static_cast<size_t>(n_layers));
  st.metrics = std::move(metrics);
  drop_unexpected_messages(self);
  return {
    [self](const prefetch_report& report) {
      auto& st = self->state;
      const auto layers = st.totals.size();
      if (report.counts.size() != layers * prefetch_report::fields) {
        VOLT_WARN("prefetch", "dropped a report of "
                                << report.counts.size() << " counts (expected "
                                << layers * prefetch_report::fields << ")");
        return;
      }
      const uint32_t* at = report.counts.data();
      for (size_t l = 0; l < layers; ++l, at += prefetch_report::fields) {
        const auto routed = at[2 * predictor_count];
        for (size_t p = 0; p < predictor_count; ++p) {
          auto& c = st.totals[l][p];
          const auto predicted = at[2 * p];
          const auto hits = at[2 * p + 1];
          ++c.steps;
          c.predicted += predicted;
          c.hits += hits;
          c.actual += routed;
          if (st.metrics)
            st.metrics->prefetch_predicted(
              static_cast<uint32_t>(l),
              to_string(static_cast<predictor_kind>(p)), predicted, hits);
        }
        if (st.metrics)
          st.metrics->prefetch_routed(
            static_cast<uint32_t>(l), routed,
            at[2 * static_cast<size_t>(predictor_kind::combined)]);
      }
      if (st.metrics)
        st.metrics->prefetch_step();
    },
    [self](status_atom) { return status_line(self->state); },
  };
}

} // namespace volt
