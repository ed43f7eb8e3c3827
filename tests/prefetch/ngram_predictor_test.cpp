#define CAF_SUITE prefetch.ngram

// The n-gram predictor: what it learns from a context, how an unseen long
// context falls back to the shorter ones it contains, and the earlier
// position's experts as part of the context.

#include "prefetch/ngram_predictor.hpp"

#include <algorithm>
#include <numeric>

#include "tests/test_dsl.hpp"

using namespace volt::prefetch;

namespace {

constexpr int64_t experts = 8;
constexpr int64_t k = 2;

/// The context of a row whose last tokens are `tokens`, last first, and
/// whose earlier position chose `previous` at layer 0 (none when empty).
row_context context(std::vector<int32_t> tokens,
                    std::vector<int32_t> previous = {}) {
  row_context ctx;
  uint64_t hash = 0;
  for (auto t : tokens) {
    hash = extend_token_hash(hash, t);
    ctx.token_hashes.push_back(hash);
  }
  ctx.previous_experts = std::move(previous);
  return ctx;
}

/// Expert ids by probability, most likely first (ties: lower id).
std::vector<uint32_t> ranking(const ngram_predictor& p, const row_context& c) {
  std::vector<float> probs(experts);
  p.predict(0, c, probs.data());
  std::vector<uint32_t> ids(experts);
  std::iota(ids.begin(), ids.end(), 0u);
  std::stable_sort(ids.begin(), ids.end(), [&](uint32_t a, uint32_t b) {
    return probs[a] > probs[b];
  });
  return ids;
}

std::vector<uint32_t> top(const ngram_predictor& p, const row_context& c,
                          size_t n) {
  auto ids = ranking(p, c);
  ids.resize(n);
  std::sort(ids.begin(), ids.end());
  return ids;
}

} // namespace

CAF_TEST(knowing nothing every expert is equally likely) {
  ngram_predictor p{experts, k, 3};
  std::vector<float> probs(experts);
  p.predict(0, context({5, 6}), probs.data());
  for (auto x : probs)
    CAF_CHECK_EQUAL(x, 1.0f / experts);
}

CAF_TEST(probabilities sum to one after learning) {
  ngram_predictor p{experts, k, 3};
  const int32_t chosen[] = {1, 6};
  for (int i = 0; i < 10; ++i)
    p.learn(0, context({3, 4, 5}, {0, 1}), chosen);
  std::vector<float> probs(experts);
  p.predict(0, context({3, 4, 5}, {0, 1}), probs.data());
  CAF_CHECK_LESS(std::abs(std::accumulate(probs.begin(), probs.end(), 0.0f)
                          - 1.0f),
                 1e-5f);
  CAF_CHECK_EQUAL(top(p, context({3, 4, 5}, {0, 1}), 2),
                  (std::vector<uint32_t>{1, 6}));
}

CAF_TEST(an unseen long context falls back to the shorter ones) {
  ngram_predictor p{experts, k, 2};
  const int32_t after_a[] = {1, 2};
  const int32_t after_c[] = {3, 4};
  // Token 20 after token 10 goes to {1, 2}; after token 30 to {3, 4}.
  for (int i = 0; i < 5; ++i) {
    p.learn(0, context({20, 10}), after_a);
    p.learn(0, context({20, 30}), after_c);
  }
  CAF_CHECK_EQUAL(top(p, context({20, 10}), 2),
                  (std::vector<uint32_t>{1, 2}));
  CAF_CHECK_EQUAL(top(p, context({20, 30}), 2),
                  (std::vector<uint32_t>{3, 4}));
  // After an unseen token 40, token 20 alone knows its four experts.
  CAF_CHECK_EQUAL(top(p, context({20, 40}), 4),
                  (std::vector<uint32_t>{1, 2, 3, 4}));
  // Another layer learned nothing.
  std::vector<float> probs(experts);
  p.predict(1, context({20, 10}), probs.data());
  CAF_CHECK_EQUAL(probs[1], 1.0f / experts);
}

CAF_TEST(the experts of the earlier position tell contexts of one token apart) {
  ngram_predictor p{experts, k, 1};
  // The same token, routed by what the position before it chose.
  const int32_t after_low[] = {4, 5};
  const int32_t after_high[] = {0, 1};
  for (int i = 0; i < 5; ++i) {
    p.learn(0, context({9}, {0, 1}), after_low);
    p.learn(0, context({9}, {6, 7}), after_high);
  }
  CAF_CHECK_EQUAL(top(p, context({9}, {0, 1}), 2),
                  (std::vector<uint32_t>{4, 5}));
  CAF_CHECK_EQUAL(top(p, context({9}, {6, 7}), 2),
                  (std::vector<uint32_t>{0, 1}));
  CAF_CHECK_EQUAL(top(p, context({9}), 4),
                  (std::vector<uint32_t>{0, 1, 4, 5}));
}

CAF_TEST(recent routing outweighs old routing) {
  ngram_predictor p{experts, k, 1};
  const int32_t before[] = {0, 1};
  const int32_t after[] = {6, 7};
  for (int i = 0; i < 500; ++i)
    p.learn(0, context({2}), before);
  for (int i = 0; i < 200; ++i)
    p.learn(0, context({2}), after);
  CAF_CHECK_EQUAL(top(p, context({2}), 2), (std::vector<uint32_t>{6, 7}));
}

CAF_TEST(a small table still predicts what it holds) {
  // Room for a few contexts only: new ones evict the less used of a pair.
  ngram_predictor p{experts, k, 1, 256};
  const int32_t chosen[] = {2, 3};
  for (int32_t t = 0; t < 100; ++t)
    p.learn(0, context({t}), chosen);
  for (int i = 0; i < 10; ++i)
    p.learn(0, context({7}), chosen);
  CAF_CHECK_EQUAL(top(p, context({7}), 2), (std::vector<uint32_t>{2, 3}));
}
