#define CAF_SUITE prefetch.expert_predictor

// The predictor driven as an executor drives it, over scripted routing: it
// must learn what the tokens and the earlier experts tell, follow whichever
// of its predictors is right at each layer, back off where it is wrong, and
// score each step against the router's choices.

#include "prefetch/expert_predictor.hpp"

#include <algorithm>

#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::prefetch;

namespace {

constexpr int64_t layers = 2;
constexpr int64_t experts = 8;
constexpr int64_t k = 2;

model_config tiny_config() {
  model_config cfg;
  cfg.num_hidden_layers = layers;
  cfg.num_local_experts = experts;
  cfg.num_experts_per_tok = k;
  return cfg;
}

/// One row per sequence: sequence `key` at `position` with `token`.
struct row {
  uint64_t key;
  int32_t position;
  int32_t token;
};

step_batch batch_of(const std::vector<row>& rows) {
  step_batch b;
  for (const auto& r : rows) {
    b.sequences.push_back(step_batch::sequence{b.size(), 1, {}, r.key});
    b.token_ids.push_back(r.token);
    b.positions.push_back(r.position);
  }
  return b;
}

/// Entry logits of `n` rows that favour `favoured` [n, m], best first.
std::vector<float> logits_for(const std::vector<int32_t>& favoured, size_t n) {
  const auto m = favoured.size() / n;
  std::vector<float> out(n * experts, 0.0f);
  for (size_t i = 0; i < favoured.size(); ++i)
    out[i / m * experts + static_cast<size_t>(favoured[i])]
      = 5.0f - static_cast<float>(i % m);
  return out;
}

/// Runs one step as an executor does. `routing` [layers][n * k]; `cross`
/// [layers][n * m] names the experts the entry logits favour, best first
/// (empty: the executor reports none). Returns the step's scores.
step_scores step(expert_predictor& p, const std::vector<row>& rows,
                 const std::vector<std::vector<int32_t>>& routing,
                 const std::vector<std::vector<int32_t>>& cross = {}) {
  p.begin_step(batch_of(rows));
  const auto n = static_cast<int64_t>(rows.size());
  for (int64_t l = 0; l < layers; ++l) {
    std::vector<float> logits;
    if (!cross.empty())
      logits = logits_for(cross[static_cast<size_t>(l)], rows.size());
    const auto& staged = p.layer_begins(l, logits.empty() ? nullptr
                                                          : logits.data(),
                                        n);
    CAF_CHECK_LESS_OR_EQUAL(staged.size(), 4u);
    p.layer_routed(l, routing[static_cast<size_t>(l)].data(), n);
  }
  return p.end_step();
}

/// Two experts of `layer` for `token`, ascending.
std::vector<int32_t> scripted(int64_t layer, int32_t token) {
  auto a = static_cast<int32_t>((token + layer) % experts);
  auto b = static_cast<int32_t>((token + layer + 3) % experts);
  return {std::min(a, b), std::max(a, b)};
}

/// A fixed pseudo-random pair of distinct experts (xorshift).
std::vector<int32_t> random_pair(uint64_t& x) {
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return static_cast<int32_t>(x % experts);
  };
  auto a = next();
  auto b = next();
  while (b == a)
    b = next();
  return {std::min(a, b), std::max(a, b)};
}

/// Sums `s` into `into` for each predictor and layer.
void accumulate(step_scores& into, const step_scores& s) {
  for (size_t p = 0; p < predictor_count; ++p) {
    into.by_predictor[p].resize(layers);
    for (size_t l = 0; l < layers; ++l)
      into.by_predictor[p][l] += s.by_predictor[p][l];
  }
}

const prefetch_counts& of(const step_scores& s, predictor_kind p,
                          int64_t layer) {
  return s.by_predictor[static_cast<size_t>(p)][static_cast<size_t>(layer)];
}

} // namespace

CAF_TEST(the first step stages up to the limit and is scored exactly) {
  expert_predictor p{tiny_config(), predictor_options{}};
  CAF_CHECK_EQUAL(p.options().max_staged, 2 * k);
  // Nothing learned yet: every expert equally likely, ties by id, every rank
  // at its starting chance of one half.
  auto s = step(p, {{1, 0, 5}}, {{0, 5}, {6, 7}});
  const auto& ngram0 = of(s, predictor_kind::ngram, 0);
  CAF_CHECK_EQUAL(ngram0.steps, 1u);
  CAF_CHECK_EQUAL(ngram0.predicted, 4u); // experts 0, 1, 2, 3
  CAF_CHECK_EQUAL(ngram0.hits, 1u);
  CAF_CHECK_EQUAL(ngram0.actual, 2u);
  CAF_CHECK_EQUAL(of(s, predictor_kind::ngram, 1).hits, 0u);
  // Without entry logits the cross-layer predictor is not scored.
  CAF_CHECK_EQUAL(of(s, predictor_kind::cross_layer, 0).steps, 0u);
  CAF_CHECK_EQUAL(of(s, predictor_kind::combined, 0).predicted, 4u);
  CAF_CHECK_EQUAL(p.totals(predictor_kind::ngram, 0).hits, 1u);
}

CAF_TEST(a batch stages the likeliest experts of all its rows) {
  predictor_options o;
  o.max_staged = 3;
  expert_predictor p{tiny_config(), o};
  // Rows that want {0, 1} and {2, 3}: the union has 4 experts, 3 may be
  // staged, and the step is scored against all 4.
  auto s = step(p, {{1, 0, 5}, {2, 0, 6}}, {{0, 1, 2, 3}, {0, 1, 2, 3}},
                {{0, 1, 2, 3}, {0, 1, 2, 3}});
  const auto& cross = of(s, predictor_kind::cross_layer, 0);
  CAF_CHECK_EQUAL(cross.predicted, 3u);
  CAF_CHECK_EQUAL(cross.hits, 3u);
  CAF_CHECK_EQUAL(cross.actual, 4u);
}

CAF_TEST(it learns routing scripted by the token and stages just top k) {
  expert_predictor p{tiny_config(), predictor_options{}};
  step_scores late;
  for (int32_t pos = 0; pos < 300; ++pos) {
    int32_t token = 100 + pos % 5;
    auto s = step(p, {{1, pos, token}},
                  {scripted(0, token), scripted(1, token)});
    if (pos >= 200)
      accumulate(late, s);
  }
  for (int64_t l = 0; l < layers; ++l) {
    const auto& c = of(late, predictor_kind::combined, l);
    CAF_CHECK_EQUAL(c.recall(), 1.0);
    CAF_CHECK_EQUAL(c.precision(), 1.0);
    // Ranks 3 and 4 never hit: backed off to top-k.
    CAF_CHECK_EQUAL(c.mean_predicted(), 2.0);
  }
}

CAF_TEST(it learns from the experts of the previous position) {
  expert_predictor p{tiny_config(), predictor_options{}};
  step_scores late;
  // One token throughout; each position's experts follow the previous
  // position's: {e, e + 1} then {e + 1, e + 2}. The token alone tells
  // nothing.
  for (int32_t pos = 0; pos < 400; ++pos) {
    auto e = static_cast<int32_t>(pos % experts);
    std::vector<int32_t> pair{e, static_cast<int32_t>((e + 1) % experts)};
    std::sort(pair.begin(), pair.end());
    auto s = step(p, {{7, pos, 42}}, {pair, pair});
    if (pos >= 300)
      accumulate(late, s);
  }
  CAF_CHECK_EQUAL(of(late, predictor_kind::ngram, 0).recall(), 1.0);
  CAF_CHECK_EQUAL(of(late, predictor_kind::ngram, 1).recall(), 1.0);
}

CAF_TEST(the combination follows whichever predictor is right per layer) {
  expert_predictor p{tiny_config(), predictor_options{}};
  uint64_t seed = 88172645463325252ULL;
  step_scores late;
  for (int32_t pos = 0; pos < 600; ++pos) {
    int32_t token = 200 + pos % 7;
    // Layer 0 routes at random (no token tells it) and the entry logits
    // know it; layer 1 follows the token and the entry logits are wrong.
    auto layer0 = random_pair(seed);
    auto layer1 = scripted(1, token);
    std::vector<int32_t> wrong;
    for (int32_t e = 0; e < experts && wrong.size() < 4; ++e)
      if (e != layer1[0] && e != layer1[1])
        wrong.push_back(e);
    auto s = step(p, {{3, pos, token}}, {layer0, layer1}, {layer0, wrong});
    if (pos >= 450)
      accumulate(late, s);
  }
  auto recall = [&](predictor_kind k, int64_t l) {
    return of(late, k, l).recall();
  };
  CAF_MESSAGE("layer 0 recall: ngram " << recall(predictor_kind::ngram, 0)
              << ", cross " << recall(predictor_kind::cross_layer, 0)
              << ", combined " << recall(predictor_kind::combined, 0));
  CAF_MESSAGE("layer 1 recall: ngram " << recall(predictor_kind::ngram, 1)
              << ", cross " << recall(predictor_kind::cross_layer, 1)
              << ", combined " << recall(predictor_kind::combined, 1));
  CAF_CHECK_LESS(recall(predictor_kind::ngram, 0), 0.7);
  CAF_CHECK_EQUAL(recall(predictor_kind::cross_layer, 0), 1.0);
  CAF_CHECK_EQUAL(recall(predictor_kind::combined, 0), 1.0);
  CAF_CHECK_EQUAL(recall(predictor_kind::ngram, 1), 1.0);
  CAF_CHECK_EQUAL(recall(predictor_kind::cross_layer, 1), 0.0);
  CAF_CHECK_EQUAL(recall(predictor_kind::combined, 1), 1.0);
  // Neither stages more than it needs where it is right.
  CAF_CHECK_EQUAL(of(late, predictor_kind::combined, 0).precision(), 1.0);
  CAF_CHECK_EQUAL(of(late, predictor_kind::combined, 1).precision(), 1.0);
}

CAF_TEST(it stages nothing where it cannot predict and recovers) {
  predictor_options o;
  o.min_chance = 0.3f; // above the 2 in 8 of a blind guess
  expert_predictor p{tiny_config(), o};
  uint64_t seed = 2463534242ULL;
  step_scores blind;
  step_scores sighted;
  int32_t pos = 0;
  for (; pos < 800; ++pos) {
    auto s = step(p, {{5, pos % 512, 300 + pos % 3}},
                  {random_pair(seed), random_pair(seed)});
    if (pos >= 700)
      accumulate(blind, s);
  }
  for (; pos < 1600; ++pos) {
    int32_t token = 300 + pos % 3;
    auto s = step(p, {{5, pos % 512, token}},
                  {scripted(0, token), scripted(1, token)});
    if (pos >= 1500)
      accumulate(sighted, s);
  }
  for (int64_t l = 0; l < layers; ++l) {
    const auto& b = of(blind, predictor_kind::combined, l);
    const auto& s = of(sighted, predictor_kind::combined, l);
    CAF_MESSAGE("layer " << l << ": staged " << b.mean_predicted()
                         << " per step while routing is random, "
                         << s.mean_predicted() << " (recall " << s.recall()
                         << ") once it follows the token");
    CAF_CHECK_LESS(b.mean_predicted(), 0.5);
    CAF_CHECK_EQUAL(s.recall(), 1.0);
    CAF_CHECK_EQUAL(s.mean_predicted(), 2.0);
  }
}

CAF_TEST(an abandoned step is not scored) {
  expert_predictor p{tiny_config(), predictor_options{}};
  p.begin_step(batch_of({{1, 0, 5}}));
  const int32_t chosen[] = {0, 1};
  (void)p.layer_begins(0, nullptr, 1);
  p.layer_routed(0, chosen, 1);
  p.abandon_step();
  CAF_CHECK_EQUAL(p.totals(predictor_kind::ngram, 0).steps, 0u);
  // Calls outside a step are ignored.
  p.layer_routed(1, chosen, 1);
  CAF_CHECK_EQUAL(p.totals(predictor_kind::ngram, 1).steps, 0u);
}
