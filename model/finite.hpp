#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "model/dtype.hpp"

// Checks for NaN and infinities. Weights are checked once at load: a NaN in a
// checkpoint otherwise turns every logit into NaN, and the greedy pick then
// answers token 0 forever. Logits are checked before a token is sampled.

namespace volt {

/// Index of the first NaN or infinity among `n` floats, or -1.
int64_t first_non_finite(const float* x, size_t n);

/// Index of the first NaN or infinity among `n` little-endian elements of
/// `type` at `data` (any alignment), or -1; integer types never hold one.
int64_t first_non_finite(dtype type, const void* data, size_t n);

/// "NaN", "+inf" or "-inf" for a non-finite `x`.
std::string non_finite_name(float x);

} // namespace volt
