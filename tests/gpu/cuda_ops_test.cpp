#define CAF_SUITE gpu.cuda_ops

// Every CUDA op against its CPU twin (or a float64 re-computation) on fresh
// random inputs, outputs poisoned with NaN / -1 before each run, odd sizes
// (1, 3, 31, 257 tokens; 6 and 8 experts; k up to 8; up to 256 experts for
// gating). Bounds: bf16 ≤ 1e-2, int8 ≤ 3e-2 against float64 on the
// dequantised weights. Without a GPU (or a CUDA build) every case prints
// VOLT_GPU_SKIPPED and ctest reports the suite as skipped.

#include "tests/gpu/gpu_test_util.hpp"
#include "tests/test_dsl.hpp"

#ifdef VOLT_HAVE_CUDA

#  include <algorithm>
#  include <numeric>
#  include <set>

#  include "gpu/cpu/cpu_ops.hpp"
#  include "gpu/cpu/quant.hpp"
#  include "gpu/cuda/expert_ffn.cuh"
#  include "gpu/cuda/gating.cuh"
#  include "gpu/cuda/moe_layer.hpp"
#  include "gpu/cuda/permute.cuh"
#  include "gpu/cuda/route_decode.cuh"
#  include "model/forward.hpp"
#  include "tests/gpu/cuda_test_util.hpp"

using namespace volt;
using namespace volt::test;
using cuda::device_buffer;

namespace {

/// k distinct random experts per token.
std::vector<int32_t> random_topk(int64_t n, int64_t k, int64_t e,
                                 std::mt19937& gen) {
  std::vector<int32_t> ids;
  std::vector<int32_t> all(static_cast<size_t>(e));
  for (int64_t t = 0; t < n; ++t) {
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), gen);
    ids.insert(ids.end(), all.begin(), all.begin() + k);
  }
  return ids;
}

struct host_experts {
  int64_t e, hidden, ffn;
  bool int8;
  // What the kernel computes with, as f32 (bf16-rounded or dequantised).
  std::vector<float> w13, w2; // [e, 2 ffn, hidden], [e, hidden, ffn]
  device_buffer d_w13, d_w2, d_s13, d_s2;
  cuda::expert_layer layer;
};

host_experts make_experts(int64_t e, int64_t hidden, int64_t ffn, bool int8,
                          std::mt19937& gen) {
  host_experts h{e, hidden, ffn, int8, {}, {}, {}, {}, {}, {}, {}};
  auto w13 = uniform_floats(static_cast<size_t>(e * 2 * ffn * hidden), gen,
                            1.0f / std::sqrt(float(hidden)));
  auto w2 = uniform_floats(static_cast<size_t>(e * hidden * ffn), gen,
                           1.0f / std::sqrt(float(ffn)));
  h.layer.n_experts = e;
  h.layer.hidden = hidden;
  h.layer.ffn = ffn;
  if (int8) {
    auto quant = [](const std::vector<float>& w, int64_t rows, int64_t cols,
                    std::vector<float>& deq, device_buffer& dq,
                    device_buffer& ds) {
      std::vector<int8_t> q(w.size());
      std::vector<float> s(static_cast<size_t>(rows));
      cpu::quantize_int8_rows(w.data(), rows, cols, q.data(), s.data());
      deq.resize(w.size());
      cpu::dequantize_int8_rows(q.data(), s.data(), rows, cols, deq.data());
      dq = upload(q);
      ds = upload(s);
    };
    quant(w13, e * 2 * ffn, hidden, h.w13, h.d_w13, h.d_s13);
    quant(w2, e * hidden, ffn, h.w2, h.d_w2, h.d_s2);
    h.layer.format = cuda::weight_format::int8;
    h.layer.s13 = h.d_s13.get<float>();
    h.layer.s2 = h.d_s2.get<float>();
  } else {
    h.w13 = round_bf16(w13);
    h.w2 = round_bf16(w2);
    h.d_w13 = upload(to_bf16_bits(w13));
    h.d_w2 = upload(to_bf16_bits(w2));
    h.layer.format = cuda::weight_format::bf16;
  }
  h.layer.w13 = h.d_w13.get();
  h.layer.w2 = h.d_w2.get();
  return h;
}

/// Float64 SwiGLU of one row through expert `e` of `h`.
std::vector<double> expert_ref(const host_experts& h, int64_t e,
                               const float* x) {
  std::vector<double> out(static_cast<size_t>(h.hidden));
  const float* w1 = h.w13.data() + e * 2 * h.ffn * h.hidden;
  swiglu_row_f64(x, w1, w1 + h.ffn * h.hidden,
                 h.w2.data() + e * h.hidden * h.ffn, h.hidden, h.ffn,
                 out.data());
  return out;
}

/// Random group sizes (zeros included) summing to n_rows, one group per
/// expert, the groups in a shuffled expert order: (expert of each group,
/// offsets).
std::pair<std::vector<int32_t>, std::vector<int32_t>>
random_groups(int64_t e, int64_t n_rows, std::mt19937& gen) {
  std::vector<int32_t> expert(static_cast<size_t>(e));
  std::iota(expert.begin(), expert.end(), 0);
  std::shuffle(expert.begin(), expert.end(), gen);
  std::vector<int32_t> offsets(static_cast<size_t>(e + 1), 0);
  for (int64_t r = 0; r < n_rows; ++r)
    ++offsets[1 + gen() % static_cast<uint32_t>(e)];
  std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
  return {std::move(expert), std::move(offsets)};
}

/// float64 outputs of grouped rows `x`: group g's rows [offsets[g],
/// offsets[g + 1]) through expert expert[g].
std::vector<double> grouped_ref(const host_experts& h,
                                const std::vector<int32_t>& expert,
                                const std::vector<int32_t>& offsets,
                                const std::vector<float>& x) {
  std::vector<double> want(x.size());
  for (size_t g = 0; g < expert.size(); ++g)
    for (int64_t r = offsets[g]; r < offsets[g + 1]; ++r) {
      auto ref = expert_ref(h, expert[g], x.data() + r * h.hidden);
      std::copy(ref.begin(), ref.end(), want.begin() + r * h.hidden);
    }
  return want;
}

/// Runs expert_ffn over random groups and checks against float64.
void check_expert_ffn(int64_t e, int64_t hidden, int64_t ffn, bool int8,
                      int64_t n_rows, cuda::ffn_path path, uint32_t seed) {
  std::mt19937 gen{seed};
  auto h = make_experts(e, hidden, ffn, int8, gen);
  auto [expert, offsets] = random_groups(e, n_rows, gen);
  int64_t max_rows = 0;
  for (int64_t g = 0; g < e; ++g)
    max_rows = std::max<int64_t>(max_rows, offsets[g + 1] - offsets[g]);
  // Rows in the activation type the path takes: f16 for int8 decode.
  const bool f16 = cuda::decode_takes_f16(h.layer, path);
  auto x = uniform_floats(static_cast<size_t>(n_rows * hidden), gen);
  x = f16 ? round_f16(x) : round_bf16(x);
  auto d_x = upload(f16 ? to_f16_bits(x) : to_bf16_bits(x));
  auto d_expert = upload(expert);
  auto d_offsets = upload(offsets);
  cuda::ffn_groups groups{e, d_expert.get<int32_t>(), d_offsets.get<int32_t>(),
                          expert.data(), offsets.data()};
  device_buffer ws(cuda::expert_ffn_workspace_bytes(h.layer, n_rows));
  auto splits = cuda::expert_ffn_splits(h.layer, path);
  auto d_y = poisoned(sizeof(float) * splits * n_rows * hidden);
  auto d_out = poisoned(sizeof(float) * n_rows * hidden);
  cublasHandle_t cublas = nullptr;
  CUBLAS_CHECK(cublasCreate(&cublas));
  auto taken = cuda::expert_ffn(h.layer, groups, d_x.get(), n_rows, max_rows,
                                path, ws.get(), ws.bytes(), d_y.get<float>(),
                                cublas, nullptr);
  CAF_CHECK(taken == path);
  cuda::sum_splits(d_y.get<float>(), splits, n_rows, hidden, d_out.get<float>(),
                   nullptr);
  auto got = download<float>(d_out, static_cast<size_t>(n_rows * hidden));
  cublasDestroy(cublas);
  auto want = grouped_ref(h, expert, offsets, x);
  auto err = rel_error(got, want);
  CAF_MESSAGE((int8 ? "int8" : "bf16")
              << (path == cuda::ffn_path::decode ? " decode" : " gemm")
              << " e=" << e << " hidden=" << hidden << " ffn=" << ffn
              << " rows=" << n_rows << " splits=" << splits
              << " rel_error=" << err);
  CAF_CHECK_LESS(err, int8 ? 3e-2 : 1e-2);
}

/// Checks a kernel's top-k against cpu::topk_gating on `logits`: ids must
/// match except where two probabilities tie to within `tie` (relative), and
/// the weights within 1e-5. With `available` (the mask the kernel had), the
/// zero-weight filler slots and the kernel's `degraded` flags must match
/// the twin's too.
void check_gating(const std::vector<float>& logits, int64_t n, int64_t e,
                  int64_t k, const std::vector<int32_t>& ids,
                  const std::vector<float>& w, float tie,
                  const std::vector<uint8_t>* available = nullptr,
                  const std::vector<uint8_t>* degraded = nullptr) {
  std::vector<int32_t> want_ids(ids.size());
  std::vector<float> want_w(w.size());
  std::vector<uint8_t> want_degraded(static_cast<size_t>(n), 0);
  cpu::topk_gating(logits.data(), n, e, k, want_ids.data(), want_w.data(),
                   available ? available->data() : nullptr,
                   want_degraded.data());
  size_t mismatches = 0;
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] != want_ids[i]
        && std::abs(w[i] - want_w[i]) > tie * std::abs(want_w[i]))
      ++mismatches;
  CAF_CHECK_EQUAL(mismatches, 0u);
  CAF_CHECK_LESS(rel_error(w, want_w), 1e-5);
  if (available == nullptr)
    return;
  size_t unavailable = 0, fillers = 0, want_fillers = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    unavailable += (*available)[static_cast<size_t>(ids[i])] == 0;
    fillers += w[i] == 0.0f;
    want_fillers += want_w[i] == 0.0f;
  }
  CAF_CHECK_EQUAL(unavailable, 0u);
  CAF_CHECK_EQUAL(fillers, want_fillers);
  if (degraded != nullptr)
    CAF_CHECK_EQUAL(*degraded, want_degraded);
}

/// Flags for `e` experts with `keep` of them available, picked at random.
std::vector<uint8_t> random_availability(int64_t e, int64_t keep,
                                         std::mt19937& gen) {
  std::vector<uint8_t> flags(static_cast<size_t>(e), 0);
  std::fill(flags.begin(), flags.begin() + keep, uint8_t{1});
  std::shuffle(flags.begin(), flags.end(), gen);
  return flags;
}

} // namespace

CAF_TEST(gating matches the CPU twin) {
  if (!gpu_available())
    return;
  std::mt19937 gen{1};
  for (int64_t n : {1, 3, 31, 257, 4096})
    for (int64_t e : {6, 8, 60, 128, 256})
      for (int64_t k : {1, 2, 6, 8}) {
        if (k > e)
          continue;
        auto logits = uniform_floats(static_cast<size_t>(n * e), gen, 4.0f);
        auto d_logits = upload(logits);
        auto d_ids = poisoned(sizeof(int32_t) * n * k);
        auto d_w = poisoned(sizeof(float) * n * k);
        cuda::topk_gating(d_logits.get<float>(), n, e, k, d_ids.get<int32_t>(),
                          d_w.get<float>(), nullptr);
        auto ids = download<int32_t>(d_ids, static_cast<size_t>(n * k));
        auto w = download<float>(d_w, static_cast<size_t>(n * k));
        check_gating(logits, n, e, k, ids, w, 1e-6f);
      }
}

CAF_TEST(gating without unavailable experts matches the CPU twin) {
  if (!gpu_available())
    return;
  std::mt19937 gen{11};
  for (int64_t n : {1, 3, 31, 257})
    for (int64_t e : {6, 8, 60, 256})
      for (int64_t k : {1, 2, 6, 8})
        // One expert left (every slot past the first is a filler), fewer
        // than k, half, all but one.
        for (int64_t keep : {int64_t{1}, k - 1, e / 2, e - 1}) {
          if (k > e || keep < 1)
            continue;
          auto logits = uniform_floats(static_cast<size_t>(n * e), gen, 4.0f);
          auto available = random_availability(e, keep, gen);
          auto d_logits = upload(logits);
          auto d_available = upload(available);
          auto d_degraded = upload(std::vector<uint8_t>(size_t(n), 0));
          auto d_ids = poisoned(sizeof(int32_t) * n * k);
          auto d_w = poisoned(sizeof(float) * n * k);
          cuda::topk_gating(d_logits.get<float>(), n, e, k,
                            d_ids.get<int32_t>(), d_w.get<float>(), nullptr,
                            d_available.get<uint8_t>(),
                            d_degraded.get<uint8_t>());
          auto ids = download<int32_t>(d_ids, static_cast<size_t>(n * k));
          auto w = download<float>(d_w, static_cast<size_t>(n * k));
          auto degraded = download<uint8_t>(d_degraded, size_t(n));
          check_gating(logits, n, e, k, ids, w, 1e-6f, &available, &degraded);
        }
}

CAF_TEST(dispatch plan matches plan_dispatch and inverts) {
  if (!gpu_available())
    return;
  std::mt19937 gen{2};
  for (int64_t n : {1, 3, 31, 257})
    for (int64_t e : {6, 8})
      for (int64_t k : {1, 2, 4}) {
        auto ids = random_topk(n, k, e, gen);
        auto d_ids = upload(ids);
        device_buffer ws(cuda::plan_dispatch_workspace_bytes(n * k, e));
        auto d_sorted = poisoned(sizeof(int32_t) * n * k);
        auto d_offsets = poisoned(sizeof(int32_t) * (e + 1));
        auto d_pair_row = poisoned(sizeof(int32_t) * n * k);
        cuda::plan_dispatch(d_ids.get<int32_t>(), n, k, e, ws.get(), ws.bytes(),
                            d_sorted.get<int32_t>(), d_offsets.get<int32_t>(),
                            d_pair_row.get<int32_t>(), nullptr);
        auto sorted = download<int32_t>(d_sorted, static_cast<size_t>(n * k));
        auto offsets = download<int32_t>(d_offsets, static_cast<size_t>(e + 1));
        auto pair_row = download<int32_t>(d_pair_row,
                                          static_cast<size_t>(n * k));
        auto plan = volt::plan_dispatch(ids, n, k, e);
        for (size_t r = 0; r < sorted.size(); ++r) {
          CAF_CHECK_EQUAL(sorted[r] / k, plan.row_token[r]);
          CAF_CHECK_EQUAL(sorted[r] % k, plan.row_slot[r]);
          CAF_CHECK_EQUAL(pair_row[sorted[r]], static_cast<int32_t>(r));
        }
        CAF_CHECK_EQUAL(offsets[0], 0);
        CAF_CHECK_EQUAL(offsets[e], n * k);
        size_t g = 0;
        for (int64_t x = 0; x < e; ++x) {
          auto count = offsets[x + 1] - offsets[x];
          if (count == 0)
            continue;
          CAF_REQUIRE_LESS(g, plan.expert_ids.size());
          CAF_CHECK_EQUAL(plan.expert_ids[g], static_cast<uint32_t>(x));
          CAF_CHECK_EQUAL(plan.row_counts[g], static_cast<uint32_t>(count));
          ++g;
        }
        CAF_CHECK_EQUAL(g, plan.expert_ids.size());
      }
}

CAF_TEST(gather and combine match the CPU twins) {
  if (!gpu_available())
    return;
  std::mt19937 gen{3};
  const int64_t hidden = 96;
  for (int64_t n : {1, 3, 31, 257})
    for (int64_t splits : {1, 4}) {
      const int64_t k = 2;
      const int64_t e = 6;
      auto ids = random_topk(n, k, e, gen);
      auto plan = volt::plan_dispatch(ids, n, k, e);
      std::vector<int32_t> sorted(ids.size());
      std::vector<int32_t> pair_row(ids.size());
      for (size_t r = 0; r < sorted.size(); ++r) {
        sorted[r] = plan.row_token[r] * static_cast<int32_t>(k)
                    + plan.row_slot[r];
        pair_row[sorted[r]] = static_cast<int32_t>(r);
      }
      auto x = uniform_floats(static_cast<size_t>(n * hidden), gen);
      auto d_x = upload(x);
      auto d_sorted = upload(sorted);
      auto d_rows = poisoned(2 * n * k * hidden);
      cuda::gather_rows(d_x.get<float>(), d_sorted.get<int32_t>(), n * k, k,
                        hidden, d_rows.get<__nv_bfloat16>(), nullptr);
      auto rows = download<uint16_t>(d_rows,
                                     static_cast<size_t>(n * k * hidden));
      for (size_t r = 0; r < sorted.size(); ++r)
        for (int64_t i = 0; i < hidden; ++i)
          CAF_CHECK_EQUAL(rows[r * hidden + i],
                          f32_to_bf16(x[plan.row_token[r] * hidden + i]));
      auto y = uniform_floats(static_cast<size_t>(splits * n * k * hidden),
                              gen);
      auto w = uniform_floats(static_cast<size_t>(n * k), gen);
      auto d_y = upload(y);
      auto d_w = upload(w);
      auto d_pair_row = upload(pair_row);
      auto d_out = poisoned(sizeof(float) * n * hidden);
      cuda::combine(d_y.get<float>(), splits, d_pair_row.get<int32_t>(),
                    d_w.get<float>(), n, k, hidden, d_out.get<float>(),
                    nullptr);
      auto got = download<float>(d_out, static_cast<size_t>(n * hidden));
      std::vector<float> summed(static_cast<size_t>(n * k * hidden), 0.0f);
      for (int64_t s = 0; s < splits; ++s)
        for (size_t i = 0; i < summed.size(); ++i)
          summed[i] += y[s * summed.size() + i];
      std::vector<float> want(static_cast<size_t>(n * hidden), 0.0f);
      volt::combine(plan, w, k, summed.data(), hidden, want);
      CAF_CHECK_LESS(rel_error(got, want), 1e-6);
    }
}

CAF_TEST(routing a decode batch in one launch matches the CPU twins) {
  if (!gpu_available())
    return;
  std::mt19937 gen{4};
  for (int64_t n : {1, 3, 8})
    for (int64_t e : {6, 8, 32})
      for (int64_t k : {1, 2, 6})
        for (int64_t hidden : {8, 136, 4096})
          for (bool f16 : {false, true})
            // Every expert available, one, all but one (degraded routing).
            for (int64_t keep : {e, int64_t{1}, e - 1}) {
              if (k > e || !cuda::route_decode_supported(n, e, k, hidden))
                continue;
              auto x = uniform_floats(static_cast<size_t>(n * hidden), gen);
              auto gate = uniform_floats(static_cast<size_t>(e * hidden), gen,
                                         1.0f / std::sqrt(float(hidden)));
              auto available = random_availability(e, keep, gen);
              auto d_available = upload(available);
              auto d_degraded = upload(std::vector<uint8_t>(size_t(n), 0));
              const bool masked = keep < e;
              auto d_x32 = upload(x);
              auto d_x = upload(to_bf16_bits(x));
              auto d_gate = upload(gate);
              auto d_ids = poisoned(sizeof(int32_t) * n * k);
              auto d_w = poisoned(sizeof(float) * n * k);
              auto d_sorted = poisoned(sizeof(int32_t) * n * k);
              auto d_offsets = poisoned(sizeof(int32_t) * (e + 1));
              auto d_pair_row = poisoned(sizeof(int32_t) * n * k);
              auto d_rows = poisoned(2 * n * k * hidden);
              device_buffer ws(cuda::route_decode_workspace_bytes(e, hidden));
              CUDA_CHECK(cudaMemset(ws.get(), 0, ws.bytes()));
              // Twice, outputs poisoned in between: the first call must leave
              // the workspace ready for the next (as a graph replay needs).
              for (int call = 0; call < 2; ++call) {
                for (auto* b : {&d_ids, &d_w, &d_sorted, &d_offsets,
                                &d_pair_row, &d_rows})
                  CUDA_CHECK(cudaMemset(b->get(), 0xff, b->bytes()));
                cuda::route_decode(
                  d_x32.get<float>(), d_gate.get<float>(),
                  d_x.get<__nv_bfloat16>(), n, hidden, e, k,
                  d_ids.get<int32_t>(), d_w.get<float>(),
                  d_sorted.get<int32_t>(), d_offsets.get<int32_t>(),
                  d_pair_row.get<int32_t>(), d_rows.get(), f16, ws.get(),
                  nullptr, masked ? d_available.get<uint8_t>() : nullptr,
                  masked ? d_degraded.get<uint8_t>() : nullptr);
              }
              auto ids = download<int32_t>(d_ids, static_cast<size_t>(n * k));
              auto w = download<float>(d_w, static_cast<size_t>(n * k));
              auto degraded = download<uint8_t>(d_degraded, size_t(n));
              // The CPU twins: router product (float64 sums), gating, plan.
              std::vector<float> logits(static_cast<size_t>(n * e));
              for (int64_t t = 0; t < n; ++t)
                for (int64_t x_ = 0; x_ < e; ++x_) {
                  double sum = 0;
                  for (int64_t i = 0; i < hidden; ++i)
                    sum += double(x[t * hidden + i]) * gate[x_ * hidden + i];
                  logits[t * e + x_] = static_cast<float>(sum);
                }
              check_gating(logits, n, e, k, ids, w, 1e-5f,
                           masked ? &available : nullptr,
                           masked ? &degraded : nullptr);
              // The plan and the rows follow the ids the kernel chose (fillers
              // included).
              auto plan = volt::plan_dispatch(ids, n, k, e);
              auto sorted = download<int32_t>(d_sorted,
                                              static_cast<size_t>(n * k));
              auto offsets = download<int32_t>(d_offsets,
                                               static_cast<size_t>(e + 1));
              auto pair_row = download<int32_t>(d_pair_row,
                                                static_cast<size_t>(n * k));
              auto rows = download<uint16_t>(
                d_rows, static_cast<size_t>(n * k * hidden));
              CAF_CHECK_EQUAL(offsets[0], 0);
              CAF_CHECK_EQUAL(offsets[e], n * k);
              for (size_t r = 0; r < sorted.size(); ++r) {
                CAF_CHECK_EQUAL(sorted[r] / k, plan.row_token[r]);
                CAF_CHECK_EQUAL(sorted[r] % k, plan.row_slot[r]);
                CAF_CHECK_EQUAL(pair_row[sorted[r]], static_cast<int32_t>(r));
                size_t wrong = 0;
                for (int64_t i = 0; i < hidden; ++i) {
                  auto want = f32_to_bf16(x[plan.row_token[r] * hidden + i]);
                  if (f16)
                    want = f32_to_f16(bf16_to_f32(want));
                  wrong += rows[r * hidden + i] != want;
                }
                CAF_CHECK_EQUAL(wrong, 0u);
              }
            }
}

/// Decode-path variants the tests cover: 16- and 32-byte chunks, w1/w3 and
/// w2 split along K or not, x loaded late.
std::vector<cuda::decode_tuning> decode_variants() {
  std::vector<cuda::decode_tuning> out;
  for (int chunks : {1, 2})
    for (int64_t splits : {0, 1, 2, 4}) {
      cuda::decode_tuning t;
      t.chunks = chunks;
      t.w13_splits = splits;
      t.w2_splits = splits > 0 ? splits : 4;
      out.push_back(t);
    }
  for (int chunks : {1, 2}) {
    cuda::decode_tuning t;
    t.chunks = chunks;
    t.x_late = true;
    out.push_back(t);
  }
  return out;
}

/// expert_ffn_precise over random groups of unrounded rows (held as bf16
/// pairs) against float64 over the same rows: bf16 weights leave only f32
/// accumulation and the pairs' 2^-17; int8 weights are dequantised to bf16
/// on this path, which rounds them.
void check_expert_ffn_precise(int64_t e, int64_t hidden, int64_t ffn,
                              bool int8, int64_t n_rows, uint32_t seed) {
  std::mt19937 gen{seed};
  auto h = make_experts(e, hidden, ffn, int8, gen);
  auto [expert, offsets] = random_groups(e, n_rows, gen);
  auto x = uniform_floats(static_cast<size_t>(n_rows * hidden), gen);
  auto hi = to_bf16_bits(x);
  std::vector<uint16_t> lo(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    lo[i] = bf16_rest(x[i], hi[i]);
    x[i] = bf16_to_f32(hi[i]) + bf16_to_f32(lo[i]);
  }
  auto d_hi = upload(hi);
  auto d_lo = upload(lo);
  auto d_expert = upload(expert);
  auto d_offsets = upload(offsets);
  cuda::ffn_groups groups{e, d_expert.get<int32_t>(), d_offsets.get<int32_t>(),
                          expert.data(), offsets.data()};
  device_buffer ws(cuda::expert_ffn_precise_workspace_bytes(h.layer, n_rows));
  auto d_y = poisoned(sizeof(float) * n_rows * hidden);
  cublasHandle_t cublas = nullptr;
  CUBLAS_CHECK(cublasCreate(&cublas));
  cuda::expert_ffn_precise(h.layer, groups, d_hi.get<__nv_bfloat16>(),
                           d_lo.get<__nv_bfloat16>(), n_rows, ws.get(),
                           ws.bytes(), d_y.get<float>(), cublas, nullptr);
  auto got = download<float>(d_y, static_cast<size_t>(n_rows * hidden));
  cublasDestroy(cublas);
  auto want = grouped_ref(h, expert, offsets, x);
  auto err = rel_error(got, want);
  CAF_MESSAGE((int8 ? "int8" : "bf16")
              << " precise e=" << e << " hidden=" << hidden << " ffn=" << ffn
              << " rows=" << n_rows << " rel_error=" << err);
  CAF_CHECK_LESS(err, int8 ? 3e-2 : 1e-4);
}

/// Both FFN paths of one weight type at odd sizes (1, 3, 31, 257 tokens; 6 and
/// 8 experts), the decode path under every tuning variant, plus two shapes
/// large enough for the K splits of w1/w3 and of w2: (8, 1024, 256) and
/// (w2_split_experts, 256, w2_split_ffn).
void check_expert_ffn_paths(bool int8, uint32_t seed, int64_t w2_split_experts,
                            int64_t w2_split_ffn) {
  auto defaults = cuda::get_decode_tuning();
  for (int64_t e : {6, 8})
    for (int64_t n : {1, 3, 31, 257})
      check_expert_ffn(e, 128, 192, int8, n, cuda::ffn_path::gemm, seed++);
  for (auto t : decode_variants()) {
    cuda::set_decode_tuning(t);
    CAF_MESSAGE("decode chunks " << t.chunks << " splits " << t.w13_splits
                                 << " x_late " << t.x_late);
    for (int64_t e : {6, 8})
      for (int64_t n : {1, 3, 31, 257})
        check_expert_ffn(e, 128, 192, int8, n, cuda::ffn_path::decode, seed++);
    check_expert_ffn(8, 1024, 256, int8, 31, cuda::ffn_path::decode, seed++);
    check_expert_ffn(w2_split_experts, 256, w2_split_ffn, int8, 3,
                     cuda::ffn_path::decode, seed++);
  }
  cuda::set_decode_tuning(defaults);
}

CAF_TEST(bf16 expert FFN matches float64 on both paths) {
  if (!gpu_available())
    return;
  check_expert_ffn_paths(false, 10, 6, 1024);
  check_expert_ffn(6, 256, 1024, false, 3, cuda::ffn_path::gemm, 100);
}

CAF_TEST(expert FFN over bf16 pairs matches float64 to float32 accuracy) {
  if (!gpu_available())
    return;
  uint32_t seed = 300;
  for (bool int8 : {false, true})
    for (int64_t n : {1, 3, 31, 257})
      check_expert_ffn_precise(6, 128, 192, int8, n, seed++);
  check_expert_ffn_precise(8, 1024, 256, false, 17, seed++);
}

CAF_TEST(automatic takes the decode path for small experts at any rows) {
  if (!gpu_available())
    return;
  auto layer = [](cuda::weight_format f, int64_t hidden, int64_t ffn) {
    cuda::expert_layer l;
    l.format = f;
    l.n_experts = 8;
    l.hidden = hidden;
    l.ffn = ffn;
    return l;
  };
  using cuda::ffn_path;
  const auto bf16 = cuda::weight_format::bf16;
  const auto int8 = cuda::weight_format::int8;
  // Mixtral's experts (4096 x 14336): the measured row limits decide.
  auto big = layer(bf16, 4096, 14336);
  CAF_CHECK(cuda::choose_ffn_path(big, 32) == ffn_path::decode);
  CAF_CHECK(cuda::choose_ffn_path(big, 33) == ffn_path::gemm);
  auto big8 = layer(int8, 4096, 14336);
  CAF_CHECK(cuda::choose_ffn_path(big8, 256) == ffn_path::decode);
  CAF_CHECK(cuda::choose_ffn_path(big8, 257) == ffn_path::gemm);
  // The tiny fixture's experts (64 x 128, 48 KiB in bf16): 16 MiB of
  // re-reads last 341 passes of 32 rows.
  auto tiny = layer(bf16, 64, 128);
  CAF_CHECK(cuda::choose_ffn_path(tiny, 2100) == ffn_path::decode);
  CAF_CHECK(cuda::choose_ffn_path(tiny, 341 * 32) == ffn_path::decode);
  CAF_CHECK(cuda::choose_ffn_path(tiny, 341 * 32 + 1) == ffn_path::gemm);
  CAF_CHECK(cuda::choose_ffn_path(layer(int8, 64, 128), 3000)
            == ffn_path::decode);
  // The budget is a tuning knob: 0 restores the plain row limits.
  auto defaults = cuda::get_decode_tuning();
  auto t = defaults;
  t.decode_reread_max_bytes = 0;
  cuda::set_decode_tuning(t);
  CAF_CHECK(cuda::choose_ffn_path(tiny, 33) == ffn_path::gemm);
  cuda::set_decode_tuning(defaults);
}

CAF_TEST(int8 expert FFN matches float64 on the dequantised weights) {
  if (!gpu_available())
    return;
  check_expert_ffn_paths(true, 50, 8, 2048);
}

CAF_TEST(the MoE layer adds a float64 re - computation to the residual) {
  if (!gpu_available())
    return;
  std::mt19937 gen{7};
  const int64_t hidden = 128;
  const int64_t ffn = 256;
  for (bool int8 : {false, true})
    for (int64_t e : {6, 8})
      for (int64_t n : {1, 3, 31, 257}) {
        const int64_t k = 2;
        auto h = make_experts(e, hidden, ffn, int8, gen);
        auto x
          = round_bf16(uniform_floats(static_cast<size_t>(n * hidden), gen));
        auto gate = uniform_floats(static_cast<size_t>(e * hidden), gen, 0.3f);
        auto d_x = upload(to_bf16_bits(x));
        auto d_x32 = upload(x);
        auto d_gate = upload(gate);
        auto residual
          = uniform_floats(static_cast<size_t>(n * hidden), gen, 0.5f);
        auto d_out = poisoned(sizeof(float) * n * hidden);
        cublasHandle_t cublas = nullptr;
        CUBLAS_CHECK(cublasCreate(&cublas));
        {
          // A real stream: the decode path then runs as a captured graph.
          cuda::stream stream;
          cuda::moe_layer_runner runner(h.layer, k, n, cublas);
          for (auto path : {cuda::ffn_path::decode, cuda::ffn_path::gemm}) {
            // Added to the residual, as the executor does.
            CUDA_CHECK(cudaMemcpy(d_out.get(), residual.data(),
                                  sizeof(float) * residual.size(),
                                  cudaMemcpyHostToDevice));
            runner.run(d_x.get<__nv_bfloat16>(), d_x32.get<float>(),
                       d_gate.get<float>(), n, path, d_out.get<float>(), true,
                       stream.get());
            CUDA_CHECK(cudaStreamSynchronize(stream.get()));
            auto got = download<float>(d_out, static_cast<size_t>(n * hidden));
            std::vector<int32_t> ids(static_cast<size_t>(n * k));
            std::vector<float> w(ids.size());
            CUDA_CHECK(cudaMemcpy(ids.data(), runner.topk_ids(),
                                  sizeof(int32_t) * ids.size(),
                                  cudaMemcpyDeviceToHost));
            CUDA_CHECK(cudaMemcpy(w.data(), runner.topk_weights(),
                                  sizeof(float) * w.size(),
                                  cudaMemcpyDeviceToHost));
            // Routing: the CPU twin on float64 logits of the same inputs.
            std::vector<float> logits(static_cast<size_t>(n * e));
            for (int64_t t = 0; t < n; ++t)
              for (int64_t j = 0; j < e; ++j) {
                double acc = 0;
                for (int64_t i = 0; i < hidden; ++i)
                  acc += double{x[t * hidden + i]} * gate[j * hidden + i];
                logits[t * e + j] = static_cast<float>(acc);
              }
            std::vector<int32_t> want_ids(ids.size());
            std::vector<float> want_w(ids.size());
            cpu::topk_gating(logits.data(), n, e, k, want_ids.data(),
                             want_w.data());
            CAF_CHECK_LESS(rel_error(w, want_w), 1e-4);
            // Output: float64 with the GPU's routing, plus the residual.
            std::vector<double> want(residual.begin(), residual.end());
            for (int64_t t = 0; t < n; ++t)
              for (int64_t j = 0; j < k; ++j) {
                auto ref = expert_ref(h, ids[t * k + j], x.data() + t * hidden);
                for (int64_t i = 0; i < hidden; ++i)
                  want[t * hidden + i] += w[t * k + j] * ref[i];
              }
            CAF_CHECK_LESS(rel_error(got, want), int8 ? 3e-2 : 1e-2);
          }
        }
        cublasDestroy(cublas);
      }
}

#else // VOLT_HAVE_CUDA

CAF_TEST(cuda ops need a CUDA build) {
  volt::test::report_gpu_skip("volt was built without CUDA");
}

#endif // VOLT_HAVE_CUDA
