#include "model/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "base/error.hpp"

namespace volt {

namespace {

/// (quantised weight, token).
using candidate = std::pair<uint64_t, int32_t>;

/// Most likely first, lower id first among equals: a strict total order, so
/// the nucleus is one well-defined set.
bool more_likely(const candidate& x, const candidate& y) {
  return x.first > y.first || (x.first == y.first && x.second < y.second);
}

bool greedy(const float* logits, int64_t vocab, const sampling_params& params,
            float& max_logit) {
  if (params.temperature == 0)
    return true;
  max_logit = logits[greedy_token(logits, vocab)];
  // An infinite maximum leaves no finite softmax: fall back to the argmax.
  return !std::isfinite(max_logit);
}

/// The tokens a draw picks from. Weights are exp((logit - max) / T) quantised
/// to integers (the most likely token gets 2^shift), so that every sum is
/// exact and independent of the order of additions; a token whose weight
/// rounds to 0 (below ~1e-14 of the most likely) is never drawn.
struct nucleus {
  /// Quantised weight per token id.
  std::vector<uint64_t> q;
  /// Sum of the members' weights.
  uint64_t kept = 0;
  /// The least likely member; every token at least as likely belongs.
  candidate boundary{0, -1};
  /// Partition buffer of the nucleus search.
  std::vector<candidate> work;

  bool member(int32_t id) const {
    auto x = candidate{q[static_cast<size_t>(id)], id};
    return x.first > 0 && (boundary.second < 0 || !more_likely(boundary, x));
  }

  /// Computes the weights and the nucleus of `logits`.
  void build(const float* logits, int64_t vocab, const sampling_params& params,
             float max_logit) {
    // Room for vocab weights of up to 2^shift without overflowing 63 bits.
    int bits = 0;
    while (bits < 62 && (int64_t{1} << bits) < vocab)
      ++bits;
    auto scale = std::ldexp(1.0, std::min(52, 62 - bits));
    auto inv_t = 1.0 / static_cast<double>(params.temperature);
    q.assign(static_cast<size_t>(vocab), 0);
    uint64_t total = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      if (std::isnan(logits[i]))
        continue;
      auto w = std::exp((static_cast<double>(logits[i]) - max_logit) * inv_t);
      total += q[static_cast<size_t>(i)] = static_cast<uint64_t>(w * scale);
    }
    kept = total;
    boundary = candidate{0, -1};
    if (params.top_p >= 1)
      return;
    auto target = static_cast<double>(params.top_p)
                  * static_cast<double>(total);
    auto reached = [target](uint64_t sum) {
      return static_cast<double>(sum) >= target;
    };
    // Buckets by bit length: the boundary lies in the first bucket, from the
    // top, whose weights reach the target; only that bucket needs the exact
    // search, and higher buckets are members wholesale.
    uint64_t bucket_sum[64] = {};
    for (auto x : q)
      if (x > 0)
        bucket_sum[63 - __builtin_clzll(x)] += x;
    uint64_t above = 0;
    int bucket = 63;
    while (bucket > 0 && !reached(above + bucket_sum[bucket]))
      above += bucket_sum[bucket--];
    work.clear();
    for (int64_t i = 0; i < vocab; ++i) {
      auto x = q[static_cast<size_t>(i)];
      if (x > 0 && 63 - __builtin_clzll(x) == bucket)
        work.emplace_back(x, static_cast<int32_t>(i));
    }
    // Quickselect for the shortest most-likely prefix that reaches the
    // target: expected linear time, where sorting the vocabulary would cost
    // milliseconds per token. `above` sums everything more likely than
    // work[lo, hi), and does not reach the target yet.
    size_t lo = 0;
    size_t hi = work.size();
    while (lo < hi) {
      auto mid = lo + (hi - lo) / 2;
      auto first = work.begin();
      std::nth_element(first + static_cast<ptrdiff_t>(lo),
                       first + static_cast<ptrdiff_t>(mid),
                       first + static_cast<ptrdiff_t>(hi), more_likely);
      uint64_t before = 0;
      for (auto i = lo; i < mid; ++i)
        before += work[i].first;
      if (reached(above + before)) {
        hi = mid;
        continue;
      }
      above += before + work[mid].first;
      if (reached(above)) {
        boundary = work[mid];
        kept = above;
        return;
      }
      lo = mid + 1;
    }
    // Not reached (cannot happen for top_p <= 1): keep every token.
  }
};

thread_local nucleus scratch;

} // namespace

uint64_t mix_bits(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

int32_t greedy_token(const float* logits, int64_t vocab) {
  int64_t best = -1;
  for (int64_t i = 0; i < vocab; ++i)
    if (!std::isnan(logits[i]) && (best < 0 || logits[i] > logits[best]))
      best = i;
  return static_cast<int32_t>(std::max<int64_t>(best, 0));
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
    result.emplace_back(greedy_token(logits, vocab), 1.0);
    return result;
  }
  nucleus n;
  n.build(logits, vocab, params, max_logit);
  std::vector<candidate> members;
  for (int64_t i = 0; i < vocab; ++i)
    if (n.member(static_cast<int32_t>(i)))
      members.emplace_back(n.q[static_cast<size_t>(i)],
                           static_cast<int32_t>(i));
  std::sort(members.begin(), members.end(), more_likely);
  for (const auto& [q, id] : members)
    result.emplace_back(id,
                        static_cast<double>(q) / static_cast<double>(n.kept));
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
    return greedy_token(logits, vocab);
  auto& n = scratch;
  n.build(logits, vocab, params, max_logit);
  // Walk the members in id order: no sort needed, and the same walk on every
  // machine.
  auto r = static_cast<uint64_t>(next_unit() * static_cast<double>(n.kept));
  r = std::min(r, n.kept - 1);
  uint64_t cum = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    auto id = static_cast<int32_t>(i);
    if (!n.member(id))
      continue;
    cum += n.q[static_cast<size_t>(i)];
    if (r < cum)
      return id;
  }
  return greedy_token(logits, vocab); // unreachable: the argmax is a member
}

} // namespace volt
