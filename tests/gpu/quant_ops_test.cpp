#define CAF_SUITE gpu.cpu_quant

#include "gpu/cpu/quant.hpp"

#include <algorithm>
#include <vector>

#include "base/error.hpp"
#include "model/quantize.hpp"
#include "tests/gpu/gpu_test_util.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/test_dsl.hpp"

// The CPU twins of INT8 weight-only quantisation: the per-row format, the
// SwiGLU expert over it, and quantising a checkpoint's experts at load time.

using namespace volt;
using namespace volt::test;

CAF_TEST(int8 rows round - trip within half a step per element) {
  std::mt19937 gen{11};
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {31, 257},
                            {6, 64}}) {
    auto w = uniform_floats(static_cast<size_t>(rows * cols), gen, 2.0f);
    std::fill(w.begin(), w.begin() + cols, 0.0f); // an all-zero row
    std::vector<int8_t> q(w.size());
    std::vector<float> s(static_cast<size_t>(rows));
    cpu::quantize_int8_rows(w.data(), rows, cols, q.data(), s.data());
    std::vector<float> back(w.size(), NAN);
    cpu::dequantize_int8_rows(q.data(), s.data(), rows, cols, back.data());
    CAF_CHECK_EQUAL(s[0], 0.0f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        auto i = static_cast<size_t>(r * cols + c);
        CAF_CHECK_LESS_OR_EQUAL(std::abs(back[i] - w[i]), s[r] * 0.5f + 1e-7f);
        CAF_CHECK_LESS_OR_EQUAL(std::abs(int{q[i]}), 127);
      }
  }
}

CAF_TEST(int8 swiglu matches float64 on the dequantised weights) {
  std::mt19937 gen{12};
  for (auto [n, hidden, ffn] :
       {std::tuple<int64_t, int64_t, int64_t>{1, 64, 128}, {3, 37, 31},
        {31, 64, 96}}) {
    auto x = uniform_floats(static_cast<size_t>(n * hidden), gen);
    auto quant = [&](int64_t rows, int64_t cols, std::vector<int8_t>& q,
                     std::vector<float>& s, std::vector<float>& deq) {
      auto w = uniform_floats(static_cast<size_t>(rows * cols), gen, 0.2f);
      q.resize(w.size());
      s.resize(static_cast<size_t>(rows));
      deq.resize(w.size());
      cpu::quantize_int8_rows(w.data(), rows, cols, q.data(), s.data());
      cpu::dequantize_int8_rows(q.data(), s.data(), rows, cols, deq.data());
    };
    std::vector<int8_t> q1, q3, q2;
    std::vector<float> s1, s3, s2, d1, d3, d2;
    quant(ffn, hidden, q1, s1, d1);
    quant(ffn, hidden, q3, s3, d3);
    quant(hidden, ffn, q2, s2, d2);
    std::vector<float> scratch(static_cast<size_t>(2 * n * ffn));
    std::vector<float> got(static_cast<size_t>(n * hidden), NAN);
    cpu::swiglu_expert_int8(x.data(), q1.data(), s1.data(), q3.data(),
                            s3.data(), q2.data(), s2.data(), n, hidden, ffn,
                            scratch.data(), got.data());
    std::vector<double> want(got.size());
    for (int64_t r = 0; r < n; ++r)
      swiglu_row_f64(x.data() + r * hidden, d1.data(), d3.data(), d2.data(),
                     hidden, ffn, want.data() + r * hidden);
    CAF_CHECK_LESS(rel_error(got, want), 1e-5);
  }
}

CAF_TEST(quantising a checkpoint halves the expert bytes of bf16) {
  auto ckpt = checkpoint::open(tiny_mixtral_dir());
  CAF_REQUIRE(ckpt);
  auto experts = expert_weights::load(*ckpt, {0, 3, 7});
  CAF_REQUIRE(experts);
  auto q = int8_expert_weights::quantize(**experts);
  const auto& cfg = ckpt->config();
  auto elems = static_cast<size_t>(cfg.num_hidden_layers * 3 * 3
                                   * cfg.hidden_size * cfg.intermediate_size);
  auto scales = static_cast<size_t>(cfg.num_hidden_layers * 3
                                    * (2 * cfg.intermediate_size
                                       + cfg.hidden_size));
  CAF_CHECK_EQUAL(q->bytes(), elems + sizeof(float) * scales);
  CAF_CHECK_LESS(static_cast<double>(q->bytes()), 0.6 * 2.0 * elems);
  CAF_CHECK(q->find(1, 3) != nullptr);
  CAF_CHECK(q->find(1, 4) == nullptr);
  CAF_CHECK(q->find(cfg.num_hidden_layers, 3) == nullptr);
  const auto* e = q->find(0, 7);
  const auto* f = (*experts)->find(0, 7);
  std::vector<float> back(static_cast<size_t>(f->w2.numel()));
  cpu::dequantize_int8_rows(e->w2.q.data(), e->w2.scales.data(), e->w2.rows,
                            e->w2.cols, back.data());
  std::vector<float> orig(f->w2.data, f->w2.data + f->w2.numel());
  CAF_CHECK_LESS(rel_error(back, orig), 1e-2);
}

CAF_TEST(quantization names parse) {
  CAF_CHECK(parse_quantization("none") == weight_quantization::none);
  CAF_CHECK(parse_quantization("int8") == weight_quantization::int8);
  auto bad = parse_quantization("fp8");
  CAF_REQUIRE(!bad);
  CAF_CHECK_EQUAL(describe(bad.error()),
                  "unknown quantization 'fp8' (expected none or int8)");
  CAF_CHECK_EQUAL(to_string(weight_quantization::int8), "int8");
}
