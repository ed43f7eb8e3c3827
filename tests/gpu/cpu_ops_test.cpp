#define CAF_SUITE gpu.cpu_ops

#include "gpu/cpu/cpu_ops.hpp"
#include "gpu/cpu/attention_kernels.hpp"
#include "gpu/cpu/fast_exp.hpp"
#include "gpu/cpu/matmul_kernels.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <numeric>
#include <tuple>
#include <utility>
#include <random>
#include <vector>

#include "tests/test_dsl.hpp"

// Each CPU op against a float64 re-computation (or hand-computed values). Sizes
// are odd on purpose (31 tokens, 6 experts, 257 rows) so that vector tails are
// exercised.

using namespace volt;

namespace {

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen{seed};
  std::uniform_real_distribution<float> dist{-scale, scale};
  std::vector<float> out(n);
  for (auto& x : out)
    x = dist(gen);
  return out;
}

double rel_error(const std::vector<float>& got,
                 const std::vector<double>& want) {
  double num = 0;
  double den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

std::vector<double> matmul_nt_f64(const std::vector<float>& x,
                                  const std::vector<float>& w, int64_t n,
                                  int64_t in, int64_t out) {
  std::vector<double> y(static_cast<size_t>(n * out));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double acc = 0;
      for (int64_t i = 0; i < in; ++i)
        acc += double{x[r * in + i]} * w[o * in + i];
      y[r * out + o] = acc;
    }
  return y;
}

} // namespace

CAF_TEST(matmul_nt matches float64 at odd sizes) {
  for (auto [n, in, out] : {std::tuple<int64_t, int64_t, int64_t>{1, 64, 64},
                            {31, 37, 257},
                            {3, 7, 5},
                            {9, 128, 320}}) {
    auto x = random_floats(n * in, 1);
    auto w = random_floats(out * in, 2);
    std::vector<float> y(n * out, NAN);
    cpu::matmul_nt(x.data(), w.data(), n, in, out, y.data());
    CAF_CHECK_LESS(rel_error(y, matmul_nt_f64(x, w, n, in, out)), 1e-6);
  }
}

// Nodes with and without AVX2 must compute the same tokens, and a row must
// come out the same whatever batch it is in (continuous batching relies on
// it), so both kernels are compared bit for bit, over shapes that hit every
// block and tail of the AVX2 kernel (4-row blocks, single rows, odd outputs,
// inputs not a multiple of 8, more rows than one L1 chunk).
CAF_TEST(matmul_nt kernels agree bit for bit and rows do not depend on batch) {
  using cpu::detail::matmul_nt_avx2;
  using cpu::detail::matmul_nt_portable;
  const bool avx2 = cpu::detail::avx2_available();
  if (!avx2)
    CAF_MESSAGE("no AVX2 on this CPU: only the portable kernel is checked");
  int shapes = 0;
  int differing = 0;
  uint32_t seed = 10;
  for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 11, 67, 130})
    for (int64_t in : {1, 7, 8, 13, 64, 67, 128})
      for (int64_t out : {1, 2, 3, 8, 9, 17, 64}) {
        auto x = random_floats(static_cast<size_t>(n * in), ++seed, 2.0f);
        auto w = random_floats(static_cast<size_t>(out * in), ++seed, 2.0f);
        std::vector<float> portable(static_cast<size_t>(n * out), NAN);
        matmul_nt_portable(x.data(), w.data(), n, in, out, portable.data());
        // The last row alone, as if it were a batch of one.
        std::vector<float> alone(static_cast<size_t>(out), NAN);
        matmul_nt_portable(x.data() + (n - 1) * in, w.data(), 1, in, out,
                           alone.data());
        bool same = std::memcmp(alone.data(), &portable[(n - 1) * out],
                                alone.size() * sizeof(float))
                    == 0;
        if (avx2) {
          std::vector<float> fast(portable.size(), NAN);
          matmul_nt_avx2(x.data(), w.data(), n, in, out, fast.data());
          same = same
                 && std::memcmp(fast.data(), portable.data(),
                                fast.size() * sizeof(float))
                      == 0;
          matmul_nt_avx2(x.data() + (n - 1) * in, w.data(), 1, in, out,
                         alone.data());
          same = same
                 && std::memcmp(alone.data(), &portable[(n - 1) * out],
                                alone.size() * sizeof(float))
                      == 0;
        }
        ++shapes;
        if (!same) {
          ++differing;
          CAF_MESSAGE("differs at rows " << n << ", in " << in << ", out "
                                         << out);
        }
      }
  CAF_CHECK_EQUAL(shapes, 490);
  CAF_CHECK_EQUAL(differing, 0);
}

CAF_TEST(embedding gathers the rows of the ids) {
  auto table = random_floats(10 * 4, 3);
  std::vector<int32_t> ids{7, 0, 7, 9};
  std::vector<float> out(16, NAN);
  cpu::embedding(table.data(), 4, ids.data(), 4, out.data());
  for (size_t t = 0; t < ids.size(); ++t)
    for (size_t i = 0; i < 4; ++i)
      CAF_CHECK_EQUAL(out[t * 4 + i], table[ids[t] * 4 + i]);
}

CAF_TEST(rms_norm matches hand - computed values) {
  std::vector<float> x{3, 4}; // mean square 12.5
  std::vector<float> w{1, 2};
  std::vector<float> out(2, NAN);
  cpu::rms_norm(x.data(), w.data(), 1, 2, 0.0f, out.data());
  CAF_CHECK_LESS(std::abs(out[0] - 3 / std::sqrt(12.5)), 1e-6);
  CAF_CHECK_LESS(std::abs(out[1] - 8 / std::sqrt(12.5)), 1e-6);
  // In place, with eps and an odd width.
  auto y = random_floats(31 * 257, 4);
  auto g = random_floats(257, 5);
  std::vector<double> want(y.size());
  for (int r = 0; r < 31; ++r) {
    double ms = 0;
    for (int i = 0; i < 257; ++i)
      ms += double{y[r * 257 + i]} * y[r * 257 + i];
    double inv = 1 / std::sqrt(ms / 257 + 1e-5);
    for (int i = 0; i < 257; ++i)
      want[r * 257 + i] = y[r * 257 + i] * inv * g[i];
  }
  cpu::rms_norm(y.data(), g.data(), 31, 257, 1e-5f, y.data());
  CAF_CHECK_LESS(rel_error(y, want), 1e-6);
}

CAF_TEST(rope rotates pairs i and i
         + half by position times inverse frequency) {
  const int64_t hd = 8;
  auto x = random_floats(3 * 2 * hd, 6);
  auto orig = x;
  std::vector<int32_t> pos{0, 5, 1000};
  cpu::rope(x.data(), 2, nullptr, 0, pos.data(), 3, hd, 10000.0);
  std::vector<double> want(x.size());
  for (int t = 0; t < 3; ++t)
    for (int h = 0; h < 2; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        double ang = pos[t] * std::pow(10000.0, -2.0 * i / hd);
        auto base = (t * 2 + h) * hd;
        double a = orig[base + i];
        double b = orig[base + i + hd / 2];
        want[base + i] = a * std::cos(ang) - b * std::sin(ang);
        want[base + i + hd / 2] = b * std::cos(ang) + a * std::sin(ang);
      }
  CAF_CHECK_LESS(rel_error(x, want), 1e-6);
  // Position 0 is the identity.
  for (int i = 0; i < 2 * hd; ++i)
    CAF_CHECK_EQUAL(x[i], orig[i]);
}

namespace {

/// "1.23e-07" (CAF's stream shows six fixed decimals).
std::string scientific(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2e", x);
  return buf;
}

/// Paged attention against float64 dense causal attention: 2 query heads per
/// KV head, 13 tokens over pages of 4 placed out of order, head size `hd`.
void check_paged_attention(int64_t hd) {
  attention_dims dims{6, 3, hd, 0};
  const int64_t n = 13;
  const int64_t page_size = 4;
  std::vector<int32_t> block_table{5, 2, 7, 0};
  std::vector<float> k_store(static_cast<size_t>(8 * page_size * 3 * hd), NAN);
  std::vector<float> v_store(k_store.size(), NAN);
  kv_pages cache{k_store.data(), v_store.data(), 8, page_size, 3, hd};
  auto q = random_floats(n * 6 * hd, 7);
  auto k = random_floats(n * 3 * hd, 8);
  auto v = random_floats(n * 3 * hd, 9);
  std::vector<int32_t> pos(n);
  std::iota(pos.begin(), pos.end(), 0);
  cpu::kv_write(cache, block_table.data(), pos.data(), n, k.data(), v.data());
  for (auto window : {int64_t{0}, int64_t{5}}) {
    dims.sliding_window = window;
    std::vector<float> out(q.size(), NAN);
    cpu::paged_attention(q.data(), pos.data(), n, cache, block_table.data(),
                         dims, out.data());
    std::vector<double> want(q.size());
    for (int64_t t = 0; t < n; ++t)
      for (int64_t h = 0; h < 6; ++h) {
        auto kvh = h / 2;
        auto first = window > 0 ? std::max<int64_t>(0, t - window + 1) : 0;
        std::vector<double> s;
        double mx = -1e300;
        for (int64_t p = first; p <= t; ++p) {
          double acc = 0;
          for (int64_t i = 0; i < hd; ++i)
            acc += double{q[(t * 6 + h) * hd + i]} * k[(p * 3 + kvh) * hd + i];
          s.push_back(acc / std::sqrt(static_cast<double>(hd)));
          mx = std::max(mx, s.back());
        }
        double den = 0;
        for (auto& e : s)
          den += (e = std::exp(e - mx));
        for (int64_t i = 0; i < hd; ++i) {
          double acc = 0;
          for (int64_t p = first; p <= t; ++p)
            acc += s[p - first] * v[(p * 3 + kvh) * hd + i];
          want[(t * 6 + h) * hd + i] = acc / den;
        }
      }
    CAF_MESSAGE("head size " << hd << ", window " << window << ": error "
                             << scientific(rel_error(out, want)));
    CAF_CHECK_LESS(rel_error(out, want), 1e-6);
  }
}

} // namespace

CAF_TEST(paged attention equals dense causal attention for scattered pages) {
  // 8 fills one vector; 12 and 20 leave a partial block of output elements.
  for (int64_t hd : {8, 12, 20})
    check_paged_attention(hd);
}

// As for matmul_nt: nodes with and without AVX2 must attend alike. Shapes
// cover groups of 1 to 5 query heads (blocks of four and the rest), head
// sizes with and without a partial vector, one to 70 positions over pages
// placed out of order, several tokens per call and a sliding window.
CAF_TEST(paged attention kernels agree bit for bit) {
  if (!cpu::detail::avx2_available()) {
    CAF_MESSAGE("no AVX2 on this CPU: nothing to compare");
    return;
  }
  int cases = 0;
  int differing = 0;
  uint32_t seed = 100;
  for (int64_t group : {1, 2, 3, 5})
    for (int64_t hd : {8, 12, 16, 20, 32})
      for (int64_t page_size : {4, 16})
        for (int64_t window : {int64_t{0}, int64_t{9}}) {
          const int64_t kv_heads = 2;
          const int64_t n = 70;
          const int64_t pages = (n + page_size - 1) / page_size;
          std::vector<int32_t> block_table(static_cast<size_t>(pages));
          for (int64_t i = 0; i < pages; ++i) // scattered, all distinct
            block_table[static_cast<size_t>(i)]
              = static_cast<int32_t>((i * 7 + 3) % pages);
          auto k_store = random_floats(
            static_cast<size_t>(pages * page_size * kv_heads * hd), ++seed);
          auto v_store = random_floats(k_store.size(), ++seed);
          kv_pages cache{k_store.data(), v_store.data(), pages,
                         page_size,      kv_heads,       hd};
          attention_dims dims{group * kv_heads, kv_heads, hd, window};
          // Queries at positions 0, 1, 7, 8, 9, 31, 69: one token per call
          // and all of them in one call.
          std::vector<int32_t> pos{0, 1, 7, 8, 9, 31, 69};
          const auto t = static_cast<int64_t>(pos.size());
          auto q = random_floats(static_cast<size_t>(t * group * kv_heads * hd),
                                 ++seed, 3.0f);
          std::vector<float> portable(q.size(), NAN);
          std::vector<float> fast(q.size(), NAN);
          cpu::detail::paged_attention_portable(q.data(), pos.data(), t, cache,
                                                block_table.data(), dims,
                                                portable.data());
          cpu::detail::paged_attention_avx2(q.data(), pos.data(), t, cache,
                                            block_table.data(), dims,
                                            fast.data());
          bool same = std::memcmp(portable.data(), fast.data(),
                                  fast.size() * sizeof(float))
                      == 0;
          const auto row = group * kv_heads * hd;
          for (int64_t i = 0; i < t; ++i) {
            std::vector<float> one(static_cast<size_t>(row), NAN);
            cpu::detail::paged_attention_avx2(q.data() + i * row, &pos[i], 1,
                                              cache, block_table.data(), dims,
                                              one.data());
            same = same
                   && std::memcmp(one.data(), portable.data() + i * row,
                                  one.size() * sizeof(float))
                        == 0;
          }
          ++cases;
          if (!same) {
            ++differing;
            CAF_MESSAGE("differs at group " << group << ", head size " << hd
                                            << ", page size " << page_size
                                            << ", window " << window);
          }
        }
  CAF_CHECK_EQUAL(cases, 80);
  CAF_CHECK_EQUAL(differing, 0);
}

CAF_TEST(the softmax exponential is within two ulp of std exp) {
  // Every input a softmax sees: x - max(x) <= 0, down to where e^x is below
  // every float that matters next to 1.
  double worst = 0;
  for (float x = 0.0f; x > -87.0f; x = std::nextafter(x, -100.0f) - 1e-3f) {
    double got = cpu::exp_nonpositive(x);
    double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(got - want) / want);
  }
  CAF_MESSAGE("worst relative error " << scientific(worst));
  CAF_CHECK_LESS(worst, 2.5e-7); // two float ulp near 1 are 2.4e-7
  CAF_CHECK_EQUAL(cpu::exp_nonpositive(0.0f), 1.0f);
  // Far below: tiny and positive, never a garbage power of two.
  for (float x : {-90.0f, -1000.0f, -1e30f, -INFINITY}) {
    CAF_CHECK_GREATER_OR_EQUAL(cpu::exp_nonpositive(x), 0.0f);
    CAF_CHECK_LESS(cpu::exp_nonpositive(x), 1e-37f);
  }
}

CAF_TEST(topk gating picks the k largest and renormalises) {
  // Hand-computed: logits [0, ln 3, ln 2, -inf-ish] → probs ∝ [1, 3, 2, ~0].
  std::vector<float> logits{0.0f, std::log(3.0f), std::log(2.0f), -50.0f};
  std::vector<int32_t> ids(2, -1);
  std::vector<float> w(2, NAN);
  cpu::topk_gating(logits.data(), 1, 4, 2, ids.data(), w.data());
  CAF_CHECK_EQUAL(ids[0], 1);
  CAF_CHECK_EQUAL(ids[1], 2);
  CAF_CHECK_LESS(std::abs(w[0] - 0.6f), 1e-6);
  CAF_CHECK_LESS(std::abs(w[1] - 0.4f), 1e-6);
  // 31 tokens, 6 experts, k = 3: weights sum to one and follow the logits'
  // order.
  auto many = random_floats(31 * 6, 10, 3.0f);
  std::vector<int32_t> ids3(31 * 3);
  std::vector<float> w3(31 * 3);
  cpu::topk_gating(many.data(), 31, 6, 3, ids3.data(), w3.data());
  for (int t = 0; t < 31; ++t) {
    std::vector<int32_t> order(6);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return many[t * 6 + a] > many[t * 6 + b]; });
    double den = 0;
    for (int j = 0; j < 3; ++j)
      den += std::exp(double{many[t * 6 + order[j]]});
    for (int j = 0; j < 3; ++j) {
      CAF_CHECK_EQUAL(ids3[t * 3 + j], order[j]);
      CAF_CHECK_LESS(std::abs(w3[t * 3 + j]
                              - std::exp(double{many[t * 6 + order[j]]}) / den),
                     1e-6);
    }
  }
  // Ties keep the lower id first.
  std::vector<float> tied{1, 2, 2, 0};
  cpu::topk_gating(tied.data(), 1, 4, 2, ids.data(), w.data());
  CAF_CHECK_EQUAL(ids[0], 1);
  CAF_CHECK_EQUAL(ids[1], 2);
}

CAF_TEST(topk gating without unavailable experts renormalises over the rest) {
  // probs ∝ [1, 4, 3, 2] / 10; the top 2 are experts 1 and 2 (4/7, 3/7).
  std::vector<float> logits{0.0f, std::log(4.0f), std::log(3.0f),
                            std::log(2.0f)};
  auto gate = [&](std::vector<uint8_t> available, int64_t k) {
    std::vector<int32_t> ids(static_cast<size_t>(k), -1);
    std::vector<float> w(static_cast<size_t>(k), NAN);
    uint8_t degraded = 0;
    cpu::topk_gating(logits.data(), 1, 4, k, ids.data(), w.data(),
                     available.empty() ? nullptr : available.data(),
                     &degraded);
    return std::make_tuple(ids, w, degraded);
  };
  auto near = [](const std::vector<float>& got, std::vector<double> want) {
    for (size_t i = 0; i < want.size(); ++i)
      if (std::abs(got[i] - want[i]) > 1e-6)
        return false;
    return true;
  };
  // Expert 1 missing: expert 2 alone, weight 1; the second slot is a filler
  // (expert 2 again, weight 0).
  auto [ids, w, degraded] = gate({1, 0, 1, 1}, 2);
  CAF_CHECK_EQUAL(ids, (std::vector<int32_t>{2, 2}));
  CAF_CHECK(near(w, {1.0, 0.0}));
  CAF_CHECK_EQUAL(w[1], 0.0f);
  CAF_CHECK_EQUAL(degraded, 1);
  // k = 3 over {1, 2, 3}, expert 1 missing: 3/5 and 2/5.
  std::tie(ids, w, degraded) = gate({1, 0, 1, 1}, 3);
  CAF_CHECK_EQUAL(ids, (std::vector<int32_t>{2, 3, 2}));
  CAF_CHECK(near(w, {0.6, 0.4, 0.0}));
  // Both chosen missing: the top 2 of the available {0, 3}: 2/3 and 1/3.
  std::tie(ids, w, degraded) = gate({1, 0, 0, 1}, 2);
  CAF_CHECK_EQUAL(ids, (std::vector<int32_t>{3, 0}));
  CAF_CHECK(near(w, {2.0 / 3, 1.0 / 3}));
  CAF_CHECK_EQUAL(degraded, 1);
  // Fewer available than k: the one left takes weight 1.
  std::tie(ids, w, degraded) = gate({1, 0, 0, 0}, 2);
  CAF_CHECK_EQUAL(ids, (std::vector<int32_t>{0, 0}));
  CAF_CHECK(near(w, {1.0, 0.0}));
  // A missing expert nobody chose changes no bit and flags nothing.
  auto [full_ids, full_w, none] = gate({}, 2);
  std::tie(ids, w, degraded) = gate({0, 1, 1, 1}, 2);
  CAF_CHECK_EQUAL(ids, full_ids);
  CAF_CHECK_EQUAL(std::memcmp(w.data(), full_w.data(), sizeof(float) * 2), 0);
  CAF_CHECK_EQUAL(degraded, 0);
  CAF_CHECK_EQUAL(none, 0);
  // Many tokens: weights of the kept sum to 1 and no unavailable expert is
  // ever chosen; flags mark exactly the tokens whose top k lost one.
  auto many = random_floats(31 * 6, 21, 3.0f);
  std::vector<uint8_t> available{1, 0, 1, 0, 1, 1};
  std::vector<int32_t> ids3(31 * 3);
  std::vector<float> w3(31 * 3);
  std::vector<int32_t> full3(31 * 3);
  std::vector<float> fullw3(31 * 3);
  std::vector<uint8_t> flags(31, 0);
  cpu::topk_gating(many.data(), 31, 6, 3, ids3.data(), w3.data(),
                   available.data(), flags.data());
  cpu::topk_gating(many.data(), 31, 6, 3, full3.data(), fullw3.data());
  for (int t = 0; t < 31; ++t) {
    double sum = 0;
    bool lost = false;
    for (int j = 0; j < 3; ++j) {
      CAF_CHECK_EQUAL(available[ids3[t * 3 + j]], 1);
      sum += w3[t * 3 + j];
      lost |= available[full3[t * 3 + j]] == 0;
    }
    CAF_CHECK_LESS(std::abs(sum - 1.0), 1e-6);
    CAF_CHECK_EQUAL(flags[t], lost ? 1 : 0);
  }
}

CAF_TEST(swiglu expert matches float64) {
  const int64_t n = 31, hidden = 37, ffn = 53;
  auto x = random_floats(n * hidden, 11);
  auto w1 = random_floats(ffn * hidden, 12, 0.3f);
  auto w3 = random_floats(ffn * hidden, 13, 0.3f);
  auto w2 = random_floats(hidden * ffn, 14, 0.3f);
  std::vector<float> scratch(2 * n * ffn, NAN);
  std::vector<float> out(n * hidden, NAN);
  cpu::swiglu_expert(x.data(), w1.data(), w3.data(), w2.data(), n, hidden, ffn,
                     scratch.data(), out.data());
  auto g = matmul_nt_f64(x, w1, n, hidden, ffn);
  auto u = matmul_nt_f64(x, w3, n, hidden, ffn);
  std::vector<double> want(n * hidden, 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < hidden; ++o) {
      double acc = 0;
      for (int64_t j = 0; j < ffn; ++j) {
        double a = g[r * ffn + j];
        acc += a / (1 + std::exp(-a)) * u[r * ffn + j] * w2[o * ffn + j];
      }
      want[r * hidden + o] = acc;
    }
  CAF_CHECK_LESS(rel_error(out, want), 1e-6);
}

namespace {

/// bf16 bits of random weights (rounded to nearest even), and their exact
/// float values.
std::pair<std::vector<uint16_t>, std::vector<float>>
random_bf16(size_t n, uint32_t seed, float scale) {
  auto f = random_floats(n, seed, scale);
  std::vector<uint16_t> bits(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &f[i], sizeof(u));
    u += 0x7fffu + ((u >> 16) & 1u);
    bits[i] = static_cast<uint16_t>(u >> 16);
    u = static_cast<uint32_t>(bits[i]) << 16;
    std::memcpy(&f[i], &u, sizeof(u));
  }
  return {bits, f};
}

} // namespace

CAF_TEST(bf16 matmul kernels equal matmul_nt over the widened weights) {
  const bool avx2 = cpu::detail::avx2_available();
  int differing = 0;
  uint32_t seed = 500;
  for (int64_t n : {1, 2, 3, 5})
    for (int64_t in : {1, 7, 8, 13, 67, 128})
      for (int64_t out : {1, 3, 8, 9, 17, 130}) {
        auto x = random_floats(static_cast<size_t>(n * in), ++seed, 2.0f);
        auto [bits, w] = random_bf16(static_cast<size_t>(out * in), ++seed,
                                     2.0f);
        std::vector<float> want(static_cast<size_t>(n * out), NAN);
        cpu::detail::matmul_nt_portable(x.data(), w.data(), n, in, out,
                                        want.data());
        std::vector<std::vector<float>> got;
        got.emplace_back(want.size(), NAN);
        cpu::matmul_nt_bf16(x.data(), bits.data(), n, in, out,
                            got.back().data());
        // The same weights as the first `in` columns of a wider matrix
        // (the others poison): the stride skips them.
        const int64_t wide = in + 5;
        std::vector<uint16_t> wider(static_cast<size_t>(out * wide), 0x7fc0);
        for (int64_t o = 0; o < out; ++o)
          std::copy_n(bits.begin() + o * in, in, wider.begin() + o * wide);
        got.emplace_back(want.size(), NAN);
        cpu::matmul_nt_bf16(x.data(), wider.data(), n, in, out,
                            got.back().data(), wide);
        // Each kernel over two parts of the weight rows, as threads split them.
        const int64_t mid = out / 2;
        got.emplace_back(want.size(), NAN);
        cpu::detail::matmul_nt_bf16_portable(x.data(), bits.data(), n, in, 0,
                                             mid, out, got.back().data(), in);
        cpu::detail::matmul_nt_bf16_portable(x.data(), wider.data(), n, in,
                                             mid, out, out, got.back().data(),
                                             wide);
        if (avx2) {
          got.emplace_back(want.size(), NAN);
          cpu::detail::matmul_nt_bf16_avx2(x.data(), bits.data(), n, in, 0,
                                           mid, out, got.back().data(), in);
          cpu::detail::matmul_nt_bf16_avx2(x.data(), wider.data(), n, in, mid,
                                           out, out, got.back().data(), wide);
        }
        for (const auto& g : got)
          if (std::memcmp(g.data(), want.data(), want.size() * sizeof(float))
              != 0) {
            ++differing;
            CAF_MESSAGE("differs at rows " << n << ", in " << in << ", out "
                                           << out);
          }
      }
  CAF_CHECK_EQUAL(differing, 0);
}

CAF_TEST(round_to_bf16 rounds to nearest with ties to even) {
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: even (1) wins; 1 + 3·2^-8
  // is halfway between 1 + 2^-7 and 1 + 2^-6: even (1 + 2^-6) wins.
  std::vector<float> x{1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f,
                       1.0f + 0x1p-8f + 0x1p-20f, -2.5f, 0.0f};
  cpu::round_to_bf16(x.data(), static_cast<int64_t>(x.size()));
  CAF_CHECK_EQUAL(x[0], 1.0f);
  CAF_CHECK_EQUAL(x[1], 1.0f + 0x1p-6f);
  CAF_CHECK_EQUAL(x[2], 1.0f + 0x1p-7f);
  CAF_CHECK_EQUAL(x[3], -2.5f);
  CAF_CHECK_EQUAL(x[4], 0.0f);
}

CAF_TEST(bf16 swiglu expert rounds its hidden activation as the GPU does) {
  // float64 over the same bf16 weights, h rounded to bf16 as in the GPU's
  // decode path; the float sums differ from float64 by rounding only (a
  // value of h near a bf16 midpoint may round the other way, hence 1e-5).
  const int64_t n = 3, hidden = 37, ffn = 53;
  auto x = random_floats(n * hidden, 21);
  auto [w13_bits, w13] = random_bf16(2 * ffn * hidden, 22, 0.3f);
  auto [w2_bits, w2] = random_bf16(hidden * ffn, 23, 0.3f);
  std::vector<float> scratch(2 * n * ffn, NAN);
  std::vector<float> got(n * hidden, NAN);
  cpu::swiglu_expert_bf16(x.data(), w13_bits.data(), w2_bits.data(), n, hidden,
                          ffn, scratch.data(), got.data());
  std::vector<float> w1(w13.begin(), w13.begin() + ffn * hidden);
  std::vector<float> w3(w13.begin() + ffn * hidden, w13.end());
  auto g = matmul_nt_f64(x, w1, n, hidden, ffn);
  auto u = matmul_nt_f64(x, w3, n, hidden, ffn);
  std::vector<float> h(static_cast<size_t>(n * ffn));
  for (size_t i = 0; i < h.size(); ++i)
    h[i] = static_cast<float>(g[i] / (1 + std::exp(-g[i])) * u[i]);
  cpu::round_to_bf16(h.data(), static_cast<int64_t>(h.size()));
  auto want = matmul_nt_f64(h, w2, n, ffn, hidden);
  CAF_CHECK_LESS(rel_error(got, want), 1e-5);
  // Split along the FFN as the host and the GPU split a miss: the parts sum
  // to the whole; the empty part adds nothing.
  for (int64_t cut : {int64_t{0}, int64_t{1}, int64_t{20}, ffn}) {
    std::vector<float> low(n * hidden, NAN), high(n * hidden, NAN);
    cpu::swiglu_expert_bf16_part(x.data(), w13_bits.data(), w2_bits.data(), n,
                                 hidden, ffn, 0, cut, scratch.data(),
                                 low.data());
    cpu::swiglu_expert_bf16_part(x.data(), w13_bits.data(), w2_bits.data(), n,
                                 hidden, ffn, cut, ffn, scratch.data(),
                                 high.data());
    std::vector<float> sum(low.size());
    for (size_t i = 0; i < sum.size(); ++i)
      sum[i] = low[i] + high[i];
    CAF_CHECK_LESS(rel_error(sum, want), 1e-5);
  }
}

// The activation alone, over the whole range: one hidden unit and one FFN
// unit with unit weights give out = silu(x) * x.
CAF_TEST(swiglu activation is accurate for large and small inputs) {
  std::vector<float> x;
  for (float a = -200.0f; a <= 80.0f; a += 0.37f)
    x.push_back(a);
  for (float a : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-3f, -1e-3f})
    x.push_back(a);
  const auto n = static_cast<int64_t>(x.size());
  const float one = 1.0f;
  std::vector<float> scratch(static_cast<size_t>(2 * n), NAN);
  std::vector<float> out(x.size(), NAN);
  cpu::swiglu_expert(x.data(), &one, &one, &one, n, 1, 1, scratch.data(),
                     out.data());
  double worst_rel = 0;
  double worst_abs_below = 0; // where float32 underflows
  for (size_t i = 0; i < x.size(); ++i) {
    double a = x[i];
    double want = a / (1 + std::exp(-a)) * a;
    double err = std::fabs(out[i] - want);
    if (a < -87 || std::fabs(want) < 1e-30) // x * x underflows too
      worst_abs_below = std::max(worst_abs_below, err);
    else
      worst_rel = std::max(worst_rel, err / std::fabs(want));
  }
  CAF_MESSAGE("worst relative error " << worst_rel << ", absolute near 0 "
                                      << worst_abs_below);
  CAF_CHECK_LESS(worst_rel, 1e-6);
  CAF_CHECK_LESS(worst_abs_below, 1e-33);
}

CAF_TEST(argmax returns the first maximum) {
  std::vector<float> x{1, 5, 3, 5};
  CAF_CHECK_EQUAL(cpu::argmax(x.data(), 4), 1);
  CAF_CHECK_EQUAL(cpu::argmax(x.data(), 1), 0);
}
