#include "model/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "base/error.hpp"

namespace volt {

namespace {

using candidate = std::pair<double, int32_t>; // (weight, token)

/// Most likely first, lower id first among equals: a strict total order, so
/// every sort gives the same result on every machine.
bool more_likely(const candidate& x, const candidate& y) {
  return x.first > y.first || (x.first == y.first && x.second < y.second);
}

/// Highest logit, lowest id among equals; NaN never wins.
int32_t argmax(const float* logits, int64_t vocab) {
  int64_t best = -1;
  for (int64_t i = 0; i < vocab; ++i)
    if (!std::isnan(logits[i]) && (best < 0 || logits[i] > logits[best]))
      best = i;
  return static_cast<int32_t>(std::max<int64_t>(best, 0));
}

bool greedy(const float* logits, int64_t vocab, const sampling_params& params,
            float& max_logit) {
  if (params.temperature == 0)
    return true;
  max_logit = logits[argmax(logits, vocab)];
  // An infinite maximum leaves no finite softmax: fall back to the argmax.
  return !std::isfinite(max_logit);
}

/// Fills `out` with the candidates to draw from, their weights unnormalised,
/// and returns the sum of the weights: every token with a positive weight in
/// id order when top_p is 1, else the nucleus, most likely first.
double nucleus(const float* logits, int64_t vocab,
               const sampling_params& params, float max_logit,
               std::vector<candidate>& out) {
  out.clear();
  double total = 0;
  auto inv_t = 1.0 / static_cast<double>(params.temperature);
  for (int64_t i = 0; i < vocab; ++i) {
    if (std::isnan(logits[i]))
      continue;
    auto w = std::exp((static_cast<double>(logits[i]) - max_logit) * inv_t);
    if (w > 0) {
      out.emplace_back(w, static_cast<int32_t>(i));
      total += w;
    }
  }
  if (params.top_p >= 1)
    return total;
  // The nucleus is usually small: sort a growing head instead of everything.
  auto target = static_cast<double>(params.top_p) * total;
  size_t head = 64;
  for (;;) {
    head = std::min(head, out.size());
    std::partial_sort(out.begin(), out.begin() + static_cast<ptrdiff_t>(head),
                      out.end(), more_likely);
    double kept = 0;
    for (size_t i = 0; i < head; ++i) {
      kept += out[i].first;
      if (kept >= target) {
        out.resize(i + 1);
        return kept;
      }
    }
    if (head == out.size()) // rounding: target not reached, keep everything
      return kept;
    head *= 4;
  }
}

} // namespace

uint64_t mix_bits(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

caf::error check_sampling(const sampling_params& params) {
  if (!std::isfinite(params.temperature) || params.temperature < 0)
    return make_volt_error(volt_errc::invalid_request,
                           "sampling: temperature is "
                             + std::to_string(params.temperature)
                             + " (must be finite and >= 0; 0 is greedy)");
  if (!(params.top_p > 0 && params.top_p <= 1))
    return make_volt_error(volt_errc::invalid_request,
                           "sampling: top_p is " + std::to_string(params.top_p)
                             + " (must be in (0, 1]; 1 keeps every token)");
  return {};
}

std::vector<std::pair<int32_t, double>>
sampling_distribution(const float* logits, int64_t vocab,
                      const sampling_params& params) {
  std::vector<std::pair<int32_t, double>> result;
  if (vocab <= 0)
    return result;
  float max_logit = 0;
  if (greedy(logits, vocab, params, max_logit)) {
    result.emplace_back(argmax(logits, vocab), 1.0);
    return result;
  }
  std::vector<candidate> cs;
  auto total = nucleus(logits, vocab, params, max_logit, cs);
  std::sort(cs.begin(), cs.end(), more_likely);
  for (const auto& [w, id] : cs)
    result.emplace_back(id, w / total);
  return result;
}

token_sampler::token_sampler(uint64_t seed, uint64_t stream) {
  // splitmix64 fills the xoshiro state; mixing the stream in first keeps
  // (seed, stream) pairs apart.
  auto x = seed ^ mix_bits(stream + 0x632be59bd9b4e019ULL);
  for (auto& word : state_) {
    x += 0x9e3779b97f4a7c15ULL;
    word = mix_bits(x);
  }
}

uint64_t token_sampler::next_u64() {
  // xoshiro256** 1.0 (Blackman and Vigna).
  auto rotl = [](uint64_t v, int k) { return (v << k) | (v >> (64 - k)); };
  auto result = rotl(state_[1] * 5, 7) * 9;
  auto t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return result;
}

double token_sampler::next_unit() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

int32_t token_sampler::sample(const float* logits, int64_t vocab,
                              const sampling_params& params) {
  if (vocab <= 0)
    return 0;
  float max_logit = 0;
  if (greedy(logits, vocab, params, max_logit))
    return argmax(logits, vocab);
  auto total = nucleus(logits, vocab, params, max_logit, scratch_);
  auto target = next_unit() * total;
  double cum = 0;
  for (const auto& [w, id] : scratch_) {
    cum += w;
    if (target < cum)
      return id;
  }
  // Rounding left the target at the very end: the last candidate.
  return scratch_.back().second;
}

} // namespace volt
