#include "engine/logprobs.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace volt {

namespace {

/// Logits as ranked: NaN below everything.
double ranked(float x) {
  return std::isnan(x) ? -std::numeric_limits<double>::infinity()
                       : static_cast<double>(x);
}

} // namespace

token_logprob token_logprobs(const float* logits, int64_t vocab, int32_t token,
                             int32_t top_n) {
  const auto neg_inf = -std::numeric_limits<double>::infinity();
  auto max = neg_inf;
  for (int64_t i = 0; i < vocab; ++i)
    max = std::max(max, ranked(logits[i]));
  // log(sum exp(l - max)) + max; an infinite max leaves only its holders.
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    auto l = ranked(logits[i]);
    if (std::isinf(max))
      sum += l == max ? 1.0 : 0.0;
    else
      sum += std::exp(l - max);
  }
  auto log_prob = [&](int64_t i) {
    auto l = ranked(logits[i]);
    if (std::isinf(max))
      return l == max ? -std::log(sum) : neg_inf;
    return l - max - std::log(sum);
  };
  token_logprob out;
  out.token = token;
  out.logprob = token >= 0 && token < vocab
                  ? static_cast<float>(log_prob(token))
                  : static_cast<float>(neg_inf);
  // Insertion into a short sorted list: top_n <= max_logprobs, so one pass
  // over the vocabulary without sorting it.
  auto n = static_cast<size_t>(std::max<int64_t>(
    0, std::min<int64_t>(top_n, vocab)));
  std::vector<int64_t> best;
  best.reserve(n + 1);
  auto before = [&](int64_t a, int64_t b) {
    auto x = ranked(logits[a]);
    auto y = ranked(logits[b]);
    return x > y || (x == y && a < b);
  };
  for (int64_t i = 0; i < vocab && n > 0; ++i) {
    if (best.size() == n && !before(i, best.back()))
      continue;
    auto at = best.end();
    while (at != best.begin() && before(i, *(at - 1)))
      --at;
    best.insert(at, i);
    if (best.size() > n)
      best.pop_back();
  }
  for (auto i : best)
    out.top.push_back(
      top_logprob{static_cast<int32_t>(i), static_cast<float>(log_prob(i))});
  return out;
}

} // namespace volt
