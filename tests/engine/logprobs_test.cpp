#define CAF_SUITE engine.logprobs

// token_logprobs on hand-made logits: log_softmax in double, the top list's
// order (ties: lower id first), NaN and infinite logits, and top_n bounds.

#include "engine/logprobs.hpp"

#include <cmath>
#include <limits>

#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

std::vector<int32_t> ids_of(const token_logprob& x) {
  std::vector<int32_t> out;
  for (const auto& t : x.top)
    out.push_back(t.token);
  return out;
}

} // namespace

CAF_TEST(logprobs are log_softmax and the top list is sorted) {
  std::vector<float> logits = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f};
  double sum = 0;
  for (auto x : logits)
    sum += std::exp(static_cast<double>(x));
  auto lp = token_logprobs(logits.data(), 5, 4, 3);
  CAF_CHECK_EQUAL(lp.token, 4);
  CAF_CHECK_LESS(std::abs(lp.logprob - (0.5 - std::log(sum))), 1e-6);
  // 1 and 3 tie: the lower id first.
  CAF_CHECK_EQUAL(ids_of(lp), std::vector<int32_t>({1, 3, 0}));
  CAF_CHECK_EQUAL(lp.top[0].logprob, lp.top[1].logprob);
  CAF_CHECK_LESS(std::abs(lp.top[2].logprob - (1.0 - std::log(sum))), 1e-6);
  // top_n beyond the vocabulary lists it all; 0 lists nothing.
  CAF_CHECK_EQUAL(token_logprobs(logits.data(), 5, 1, 9).top.size(), 5u);
  CAF_CHECK(token_logprobs(logits.data(), 5, 1, 0).top.empty());
}

CAF_TEST(nan logits are impossible and an infinite logit takes everything) {
  auto nan = std::numeric_limits<float>::quiet_NaN();
  auto inf = std::numeric_limits<float>::infinity();
  std::vector<float> with_nan = {nan, 0.0f, 0.0f};
  auto a = token_logprobs(with_nan.data(), 3, 1, 3);
  CAF_CHECK_LESS(std::abs(a.logprob - std::log(0.5)), 1e-6);
  CAF_CHECK_EQUAL(ids_of(a), std::vector<int32_t>({1, 2, 0}));
  CAF_CHECK(std::isinf(a.top[2].logprob) && a.top[2].logprob < 0);
  std::vector<float> with_inf = {inf, 5.0f, inf};
  auto b = token_logprobs(with_inf.data(), 3, 1, 2);
  CAF_CHECK(std::isinf(b.logprob) && b.logprob < 0);
  CAF_CHECK_EQUAL(ids_of(b), std::vector<int32_t>({0, 2}));
  CAF_CHECK_LESS(std::abs(b.top[0].logprob - std::log(0.5)), 1e-6);
}
