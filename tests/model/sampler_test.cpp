#define CAF_SUITE model.sampler

// Token sampling: greedy, temperature, nucleus (top_p), and a generator whose
// draws depend only on (seed, stream), checked against softmax computed here.

#include "model/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "base/error.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

const std::vector<float> logits8 = {1.0f, 2.5f,  -0.5f, 0.0f,
                                    2.0f, -2.0f, 1.5f,  0.25f};

/// Softmax of logits / temperature in double, the reference for the sampler.
std::vector<double> softmax(const std::vector<float>& logits, double t) {
  std::vector<double> p(logits.size());
  double mx = -std::numeric_limits<double>::infinity();
  for (auto x : logits)
    mx = std::max(mx, static_cast<double>(x));
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    sum += p[i] = std::exp((logits[i] - mx) / t);
  for (auto& x : p)
    x /= sum;
  return p;
}

/// Counts of `n` draws per token.
std::vector<int64_t> draw(const std::vector<float>& logits,
                          const sampling_params& params, int64_t n,
                          uint64_t stream = 0) {
  token_sampler s{params.seed, stream};
  std::vector<int64_t> counts(logits.size());
  auto vocab = static_cast<int64_t>(logits.size());
  for (int64_t i = 0; i < n; ++i)
    counts[static_cast<size_t>(s.sample(logits.data(), vocab, params))] += 1;
  return counts;
}

/// Pearson's chi-square statistic of `counts` against probabilities `p`
/// (tokens with p = 0 must have no draws: they add infinity).
double chi_square(const std::vector<int64_t>& counts,
                  const std::vector<double>& p) {
  double n = 0;
  for (auto c : counts)
    n += static_cast<double>(c);
  double result = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    auto expected = n * p[i];
    auto diff = static_cast<double>(counts[i]) - expected;
    result += expected > 0 ? diff * diff / expected
                           : (counts[i] > 0 ? HUGE_VAL : 0.0);
  }
  return result;
}

std::string message_of(const caf::error& err) {
  return err ? describe(err) : std::string{};
}

} // namespace

CAF_TEST(greedy picks the argmax) {
  sampling_params greedy;
  token_sampler s{1, 0};
  CAF_CHECK_EQUAL(s.sample(logits8.data(), 8, greedy), 1);
  std::vector<float> ties = {0.1f, 3.0f, -1.0f, 3.0f};
  CAF_CHECK_EQUAL(s.sample(ties.data(), 4, greedy), 1); // lower id wins ties
  auto nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> with_nan = {nan, 1.0f, 2.0f, nan};
  CAF_CHECK_EQUAL(s.sample(with_nan.data(), 4, greedy), 2);
  // Greedy consumes no random numbers: the stream continues where it was.
  token_sampler fresh{1, 0};
  CAF_CHECK_EQUAL(s.next_u64(), fresh.next_u64());
  auto dist = sampling_distribution(logits8.data(), 8, greedy);
  CAF_REQUIRE_EQUAL(dist.size(), 1u);
  CAF_CHECK_EQUAL(dist[0].first, 1);
  CAF_CHECK_EQUAL(dist[0].second, 1.0);
}

CAF_TEST(a tiny top_p always picks the argmax) {
  sampling_params params{1.0f, 1e-6f, 5};
  auto counts = draw(logits8, params, 1000);
  CAF_CHECK_EQUAL(counts[1], 1000);
}

CAF_TEST(draws follow the softmax) {
  // 7 degrees of freedom: P(chi2 > 24.3) = 0.001 for a correct sampler.
  sampling_params params{0.8f, 1.0f, 42};
  auto counts = draw(logits8, params, 200000);
  auto p = softmax(logits8, static_cast<double>(0.8f));
  CAF_CHECK_LESS(chi_square(counts, p), 24.3);
  // The reported distribution is the same softmax, most likely first.
  auto dist = sampling_distribution(logits8.data(), 8, params);
  CAF_REQUIRE_EQUAL(dist.size(), 8u);
  CAF_CHECK_EQUAL(dist[0].first, 1);
  CAF_CHECK_EQUAL(dist[1].first, 4);
  for (const auto& [id, prob] : dist)
    CAF_CHECK_LESS(std::abs(prob - p[static_cast<size_t>(id)]), 1e-12);
  // A sampler that ignores the logits fails the same test.
  std::vector<int64_t> uniform(8, 25000);
  CAF_CHECK_GREATER(chi_square(uniform, p), 1000.0);
}

CAF_TEST(top_p keeps the smallest nucleus and renormalises) {
  // Probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1.
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                               std::log(0.05f)};
  sampling_params params{1.0f, 0.75f, 7};
  auto dist = sampling_distribution(logits.data(), 4, params);
  CAF_REQUIRE_EQUAL(dist.size(), 2u);
  CAF_CHECK_EQUAL(dist[0].first, 0);
  CAF_CHECK_LESS(std::abs(dist[0].second - 0.625), 1e-6);
  CAF_CHECK_EQUAL(dist[1].first, 1);
  CAF_CHECK_LESS(std::abs(dist[1].second - 0.375), 1e-6);
  auto counts = draw(logits, params, 100000);
  CAF_CHECK_EQUAL(counts[2] + counts[3], 0);
  // 1 degree of freedom: P(chi2 > 10.8) = 0.001.
  CAF_CHECK_LESS(chi_square(counts, {0.625, 0.375, 0, 0}), 10.8);
  params.top_p = 0.85f;
  CAF_CHECK_EQUAL(sampling_distribution(logits.data(), 4, params).size(), 3u);
  params.top_p = 1.0f;
  CAF_CHECK_EQUAL(sampling_distribution(logits.data(), 4, params).size(), 4u);
}

CAF_TEST(a large nucleus over equal logits takes the lowest ids) {
  std::vector<float> flat(1000, 0.5f);
  sampling_params params{1.0f, 0.5f, 3};
  auto dist = sampling_distribution(flat.data(), 1000, params);
  CAF_REQUIRE_EQUAL(dist.size(), 500u);
  CAF_CHECK_EQUAL(dist.front().first, 0);
  CAF_CHECK_EQUAL(dist.back().first, 499);
  auto counts = draw(flat, params, 2000);
  int64_t outside = 0;
  for (size_t i = 500; i < counts.size(); ++i)
    outside += counts[i];
  CAF_CHECK_EQUAL(outside, 0);
}

CAF_TEST(same seed same tokens and other streams differ) {
  sampling_params params{1.0f, 0.9f, 1234};
  auto run = [&](uint64_t seed, uint64_t stream) {
    token_sampler s{seed, stream};
    std::vector<int32_t> tokens;
    for (int i = 0; i < 64; ++i)
      tokens.push_back(s.sample(logits8.data(), 8, params));
    return tokens;
  };
  CAF_CHECK_EQUAL(run(1234, 0), run(1234, 0));
  CAF_CHECK_NOT_EQUAL(run(1234, 0), run(1234, 1));
  CAF_CHECK_NOT_EQUAL(run(1234, 0), run(1235, 0));
  // Pinned values: the generator and the draw must not change between
  // builds or machines, or a seed no longer reproduces a user's output.
  token_sampler s{1, 0};
  CAF_CHECK_EQUAL(s.next_u64(), UINT64_C(14374189321704890235));
  auto pinned = run(1234, 0);
  pinned.resize(16);
  CAF_CHECK_EQUAL(pinned, std::vector<int32_t>(
                            {0, 4, 1, 1, 4, 6, 0, 6, 4, 4, 1, 1, 4, 1, 1, 6}));
}

CAF_TEST(a lower temperature sharpens the distribution) {
  auto top = [](float t) {
    sampling_params params{t, 1.0f, 0};
    return sampling_distribution(logits8.data(), 8, params)[0].second;
  };
  CAF_CHECK_LESS(std::abs(top(1.0f) - softmax(logits8, 1.0)[1]), 1e-12);
  CAF_CHECK_GREATER(top(0.5f), top(1.0f));
  CAF_CHECK_GREATER(top(1.0f), top(2.0f));
  CAF_CHECK_GREATER(top(0.01f), 0.99);
  auto hot = draw(logits8, {2.0f, 1.0f, 9}, 20000);
  auto cold = draw(logits8, {0.25f, 1.0f, 9}, 20000);
  CAF_CHECK_GREATER(cold[1], hot[1]);
}

CAF_TEST(sampling parameters are validated) {
  CAF_CHECK_EQUAL(message_of(check_sampling({})), "");
  CAF_CHECK_EQUAL(message_of(check_sampling({0.7f, 0.9f, 1})), "");
  auto inf = std::numeric_limits<float>::infinity();
  auto nan = std::numeric_limits<float>::quiet_NaN();
  for (auto t : {-1.0f, inf, nan}) {
    auto err = check_sampling({t, 1.0f, 0});
    CAF_CHECK(err == volt_errc::invalid_request);
    CAF_CHECK_NOT_EQUAL(message_of(err).find("temperature"), std::string::npos);
  }
  for (auto p : {0.0f, -0.5f, 1.5f, nan}) {
    auto err = check_sampling({1.0f, p, 0});
    CAF_CHECK(err == volt_errc::invalid_request);
    CAF_CHECK_NOT_EQUAL(message_of(err).find("top_p"), std::string::npos);
  }
}

CAF_TEST(the nucleus of a large vocabulary matches a full sort) {
  // The sampler finds the nucleus without sorting; a plain sort of the softmax
  // must give the same set.
  token_sampler g{77, 0};
  std::vector<float> logits(5000);
  for (auto& x : logits)
    x = static_cast<float>(8.0 * g.next_unit() - 4.0);
  for (auto top_p : {0.05f, 0.3f, 0.5f, 0.9f, 0.99f}) {
    for (auto t : {0.5f, 1.0f, 1.7f}) {
      auto p = softmax(logits, static_cast<double>(t));
      std::vector<std::pair<double, int32_t>> sorted;
      for (size_t i = 0; i < p.size(); ++i)
        sorted.emplace_back(-p[i], static_cast<int32_t>(i));
      std::sort(sorted.begin(), sorted.end());
      size_t want = 0;
      double cum = 0;
      while (cum < static_cast<double>(top_p))
        cum -= sorted[want++].first;
      auto dist = sampling_distribution(logits.data(), 5000, {t, top_p, 0});
      CAF_REQUIRE_EQUAL(dist.size(), want);
      for (size_t i = 0; i < want; ++i)
        CAF_CHECK_EQUAL(dist[i].first, sorted[i].second);
    }
  }
}
