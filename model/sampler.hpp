#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "caf/error.hpp"

namespace volt {

/// splitmix64's finaliser: a bijection of 64-bit words in which every input
/// bit affects every output bit; seeds the samplers and hashes prefix pages.
uint64_t mix_bits(uint64_t x);

/// The greedy pick: the highest logit, the lowest id among equals; NaN never
/// wins (all NaN gives 0). GPU twin: cuda::argmax_rows.
int32_t greedy_token(const float* logits, int64_t vocab);

/// How a request picks its next token from the logits.
struct sampling_params {
  /// Divides the logits before the softmax; 0 picks the most likely token
  /// (greedy). Must be finite and >= 0.
  float temperature = 0;
  /// Nucleus sampling: draws only from the smallest set of most likely tokens
  /// whose probabilities add up to at least top_p; 1 keeps every token. Must be
  /// in (0, 1].
  float top_p = 1;
  /// Seeds the generator of every sequence of the request (with the sequence
  /// index as stream), so that the same seed gives the same tokens.
  uint64_t seed = 0;
};

/// Checks `params`; errors (invalid_request) name the field and its value.
caf::error check_sampling(const sampling_params& params);

/// Returns the distribution that `token_sampler::sample` draws from, as (token
/// id, probability) pairs: the softmax of logits / temperature restricted to
/// the top_p nucleus and renormalised, most likely first (ties: lower id
/// first). Greedy (temperature 0) gives the argmax with probability 1.
std::vector<std::pair<int32_t, double>>
sampling_distribution(const float* logits, int64_t vocab,
                      const sampling_params& params);

/// Draws tokens for one sequence. The generator is xoshiro256** seeded through
/// splitmix64; weights are quantised to integers so that the nucleus and the
/// draw are exact whatever the order of additions, and no std::
/// distribution is used (their output differs between standard libraries), so
/// a seed gives the same tokens on every machine for the same logits. Cost:
/// linear in the vocabulary (no sort).
class token_sampler {
public:
  /// A generator for stream `stream` (e.g. the sequence index within the
  /// request) of `seed`; different streams give independent draws.
  token_sampler(uint64_t seed, uint64_t stream);

  /// Picks a token from `logits[0, vocab)`; `params` must pass
  /// check_sampling. Greedy draws no random number. NaN logits never win.
  int32_t sample(const float* logits, int64_t vocab,
                 const sampling_params& params);

  /// Returns the next raw 64 random bits.
  uint64_t next_u64();

  /// Returns a uniform double in [0, 1) with 53 random bits.
  double next_unit();

private:
  uint64_t state_[4];
};

} // namespace volt
