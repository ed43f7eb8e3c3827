#pragma once

// The experts a step may route to, as the gating ops take them: one flag per
// expert, shared by every layer.

#include <cstdint>
#include <vector>

#include "caf/error.hpp"
#include "caf/expected.hpp"

namespace volt {

/// Flags [n_experts] with 0 for the experts in `masked` and 1 for the others;
/// empty when `masked` is (every expert may be chosen). Errors
/// (invalid_request) name an expert outside the model, or a mask that leaves
/// no expert to route to.
caf::expected<std::vector<uint8_t>>
available_experts(const std::vector<uint32_t>& masked, int64_t n_experts);

/// Checks a step's replayed routing ([n_layers, n, k] expert ids, or empty)
/// against the model: its size and every id. Errors are invalid_request.
caf::error check_replayed_routing(const std::vector<int32_t>& routing,
                                  int64_t n_layers, int64_t n, int64_t k,
                                  int64_t n_experts);

} // namespace volt
