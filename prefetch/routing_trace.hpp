#pragma once

// A routing trace: the experts a model's routers chose for every token of a
// token stream, recorded by `volt-node bench prefetch --record-routing` on a
// model trained on real text. Replayed on another model of the same expert
// count (`--routing-trace`), it gives random-weight checkpoints the routing
// of real text, so that an expert cache and its predictor are measured on
// the patterns they meet in use while everything else runs for real.
//
// File: one JSON object {"format": "volt-routing-trace", "version": 1,
// "model": <where it was recorded>, "layers": L, "experts": E, "top_k": k,
// "tokens": [ids], "routing": [ids, tokens x L x k]}.

#include <cstdint>
#include <string>
#include <vector>

#include "caf/error.hpp"
#include "caf/expected.hpp"
#include "model/model_config.hpp"

namespace volt::prefetch {

struct routing_trace {
  /// Where it was recorded (a checkpoint folder), for reports.
  std::string model;
  int64_t layers = 0;
  int64_t experts = 0;
  int64_t top_k = 0;
  /// The token stream, in order.
  std::vector<int32_t> tokens;
  /// [tokens, layers, top_k]: each token's experts per layer, best first.
  std::vector<int32_t> routing;

  /// The k experts of `token` at `layer` of a model with any number of
  /// layers: a model deeper than the trace repeats its layers in turn.
  const int32_t* experts_of(int64_t token, int64_t layer) const {
    return routing.data() + (token * layers + layer % layers) * top_k;
  }
};

/// Reads a trace; errors (invalid_config) name the file and the field.
caf::expected<routing_trace> load_routing_trace(const std::string& path);

/// Writes `trace` to `path`; errors name the file.
caf::error save_routing_trace(const routing_trace& trace,
                              const std::string& path);

/// Whether `trace` can drive `cfg`'s routers: the same expert count and
/// top-k, and every token inside the vocabulary. Errors (invalid_config)
/// name `path`.
caf::error check_trace_fits(const routing_trace& trace,
                            const model_config& cfg, const std::string& path);

} // namespace volt::prefetch
