#pragma once

#include <cstdint>

#include "actors/messages.hpp"

namespace volt {

/// The log-probability of `token` under softmax(logits) and the `top_n` most
/// likely tokens (most likely first, lower id first among equals), computed in
/// double: the model's distribution at temperature 1 before top_p, whatever
/// a request samples with (what vLLM reports by default). NaN logits count as
/// impossible; when the largest logit is infinite, the tokens holding it share
/// the probability.
token_logprob token_logprobs(const float* logits, int64_t vocab, int32_t token,
                             int32_t top_n);

} // namespace volt
