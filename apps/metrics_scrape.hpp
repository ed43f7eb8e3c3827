#pragma once

// A client's reading of a node's Prometheus endpoint: benchmarks scrape it
// before and after a run and report the counters' growth.

#include <string>

#include "caf/expected.hpp"
#include "config/endpoint.hpp"

namespace volt {

/// The body of GET /metrics at `where`; an error naming it when the endpoint
/// cannot be reached or does not answer 200.
caf::expected<std::string> scrape_metrics(const endpoint& where);

/// The sum of every series of metric `name` in Prometheus text whose labels
/// include `label` (`key="value"`; empty: every series).
double metric_sum(const std::string& text, const std::string& name,
                  const std::string& label = "");

} // namespace volt
