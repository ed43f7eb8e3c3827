// The CUDA half of `volt-node bench moe-layer`: random weights drawn on the
// device, the copy bandwidth measured first (the memory floor's
// denominator), then the whole MoE block per token count, timed with CUDA
// events after warm-up, median of many.

#include "apps/bench_moe.hpp"

#include "base/error.hpp"

#ifdef VOLT_HAVE_CUDA

#  include <algorithm>
#  include <cmath>
#  include <memory>
#  include <set>

#  include "gpu/cuda/device_buffer.hpp"
#  include "gpu/cuda/device_peaks.hpp"
#  include "gpu/cuda/gating.cuh"
#  include "gpu/cuda/moe_layer.hpp"
#  include "gpu/cuda/permute.cuh"
#  include "gpu/cuda/random_fill.cuh"

namespace volt {

namespace {

using cuda::device_buffer;
using cuda::event;

/// Median, min and max of `times` (sorted in place).
void summarise(std::vector<float>& times, moe_bench_row& row) {
  std::sort(times.begin(), times.end());
  row.median_ms = times[times.size() / 2];
  row.min_ms = times.front();
  row.max_ms = times.back();
}

} // namespace

caf::expected<moe_bench_result> run_moe_bench_cuda(const moe_bench_options& o) {
  try {
    CUDA_CHECK(cudaSetDevice(o.device));
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, o.device));
    moe_bench_result res;
    res.device = prop.name;
    cuda::stream stream;
    auto s = stream.get();
    res.copy_gbs = cuda::measure_copy_gbs(s);
    // Weights of every expert of one layer, random on the device.
    cuda::expert_layer layer;
    layer.format = o.int8 ? cuda::weight_format::int8
                          : cuda::weight_format::bf16;
    layer.n_experts = o.experts;
    layer.hidden = o.hidden;
    layer.ffn = o.ffn;
    if (auto why = cuda::expert_ffn_unsupported(layer))
      return make_volt_error(volt_errc::invalid_config, why);
    res.expert_bytes = layer.expert_bytes();
    const int64_t n13 = o.experts * 2 * o.ffn * o.hidden;
    const int64_t n2 = o.experts * o.hidden * o.ffn;
    const size_t elem = o.int8 ? 1 : 2;
    device_buffer w13(elem * n13);
    device_buffer w2(elem * n2);
    device_buffer s13;
    device_buffer s2;
    // Scales chosen so that activations stay O(1): |w| ~ 1/sqrt(fan-in).
    const float a1 = 1.0f / std::sqrt(static_cast<float>(o.hidden));
    const float a2 = 1.0f / std::sqrt(static_cast<float>(o.ffn));
    if (o.int8) {
      cuda::fill_uniform(w13.get<int8_t>(), n13, o.seed + 1, s);
      cuda::fill_uniform(w2.get<int8_t>(), n2, o.seed + 2, s);
      s13.resize(sizeof(float) * o.experts * 2 * o.ffn);
      s2.resize(sizeof(float) * o.experts * o.hidden);
      // Positive scales around a / 127: uniform in (0.5, 1.5) * a / 127.
      cuda::fill_uniform(s13.get<float>(), o.experts * 2 * o.ffn, 0.5f,
                         o.seed + 3, s);
      cuda::fill_uniform(s2.get<float>(), o.experts * o.hidden, 0.5f,
                         o.seed + 4, s);
      std::vector<float> h13(static_cast<size_t>(o.experts * 2 * o.ffn));
      std::vector<float> h2(static_cast<size_t>(o.experts * o.hidden));
      CUDA_CHECK(cudaMemcpyAsync(h13.data(), s13.get(),
                                 sizeof(float) * h13.size(),
                                 cudaMemcpyDeviceToHost, s));
      CUDA_CHECK(cudaMemcpyAsync(h2.data(), s2.get(), sizeof(float) * h2.size(),
                                 cudaMemcpyDeviceToHost, s));
      CUDA_CHECK(cudaStreamSynchronize(s));
      for (auto& v : h13)
        v = (1.0f + v) * a1 / 127.0f;
      for (auto& v : h2)
        v = (1.0f + v) * a2 / 127.0f;
      CUDA_CHECK(cudaMemcpy(s13.get(), h13.data(), sizeof(float) * h13.size(),
                            cudaMemcpyHostToDevice));
      CUDA_CHECK(cudaMemcpy(s2.get(), h2.data(), sizeof(float) * h2.size(),
                            cudaMemcpyHostToDevice));
      layer.s13 = s13.get<float>();
      layer.s2 = s2.get<float>();
    } else {
      cuda::fill_uniform(w13.get<__nv_bfloat16>(), n13, a1, o.seed + 1, s);
      cuda::fill_uniform(w2.get<__nv_bfloat16>(), n2, a2, o.seed + 2, s);
    }
    layer.w13 = w13.get();
    layer.w2 = w2.get();
    const int64_t max_tokens = *std::max_element(o.tokens.begin(),
                                                 o.tokens.end());
    // The executor's inputs: normed rows in f32 (the router's) and bf16
    // (the experts'), an f32 router, the residual added to.
    device_buffer x32(sizeof(float) * max_tokens * o.hidden);
    device_buffer x(sizeof(__nv_bfloat16) * max_tokens * o.hidden);
    device_buffer gate(sizeof(float) * o.experts * o.hidden);
    device_buffer out(sizeof(float) * max_tokens * o.hidden);
    cuda::fill_uniform(x32.get<float>(), max_tokens * o.hidden, 1.0f,
                       o.seed + 5, s);
    cuda::f32_to_bf16(x32.get<float>(), max_tokens * o.hidden,
                      x.get<__nv_bfloat16>(), s);
    cuda::fill_uniform(gate.get<float>(), o.experts * o.hidden, a1, o.seed + 6,
                       s);
    cuda::fill_uniform(out.get<float>(), max_tokens * o.hidden, 1.0f,
                       o.seed + 7, s);
    cublasHandle_t cublas = nullptr;
    CUBLAS_CHECK(cublasCreate(&cublas));
    std::unique_ptr<cublasContext, void (*)(cublasHandle_t)> cublas_guard(
      cublas, [](cublasHandle_t h) { cublasDestroy(h); });
    auto tuning = cuda::get_decode_tuning();
    if (o.decode_chunks > 0)
      tuning.chunks = static_cast<int>(o.decode_chunks);
    if (o.w13_splits > 0)
      tuning.w13_splits = o.w13_splits;
    if (o.w2_splits > 0)
      tuning.w2_splits = o.w2_splits;
    cuda::set_decode_tuning(tuning);
    auto variant_of = [](const cuda::decode_tuning& t) {
      return "c" + std::to_string(t.chunks) + " s13="
             + (t.w13_splits > 0 ? std::to_string(t.w13_splits) : "auto")
             + " s2=" + std::to_string(t.w2_splits) + (t.x_late ? " xl" : "")
             + (t.rows_hint_factor > 0 ? "" : " bound");
    };
    cuda::moe_layer_runner runner(layer, o.topk, max_tokens, cublas);
    // Distinct experts the router picked: their weights must be read.
    auto finish_row = [&](moe_bench_row& row, int64_t t) {
      std::vector<int32_t> ids(static_cast<size_t>(t * o.topk));
      CUDA_CHECK(cudaMemcpy(ids.data(), runner.topk_ids(),
                            sizeof(int32_t) * ids.size(),
                            cudaMemcpyDeviceToHost));
      row.active_experts = static_cast<int64_t>(
        std::set<int32_t>(ids.begin(), ids.end()).size());
      row.floor_ms = static_cast<double>(res.expert_bytes) * row.active_experts
                     / (res.copy_gbs * 1e9) * 1e3;
      res.rows.push_back(row);
    };
    if (o.sweep_decode) {
      std::vector<cuda::decode_tuning> variants;
      for (int chunks : {1, 2})
        for (int64_t s13 : {0, 1, 2})
          for (int64_t s2 : {2, 4}) {
            cuda::decode_tuning t = tuning;
            t.chunks = chunks;
            t.w13_splits = s13;
            t.w2_splits = s2;
            variants.push_back(t);
          }
      for (int late_or_bound : {0, 1}) {
        cuda::decode_tuning t = tuning;
        t.chunks = 2;
        t.w13_splits = 0;
        t.w2_splits = 4;
        if (late_or_bound == 0)
          t.x_late = true; // x loaded late
        else
          t.rows_hint_factor = 0; // tile for the n-row bound
        variants.push_back(t);
      }
      for (const auto& t : variants) {
        cuda::set_decode_tuning(t);
        runner.clear_graphs();
        for (auto n : o.tokens) {
          if (n > 128)
            continue;
          moe_bench_row row;
          row.tokens = n;
          row.path = "sweep";
          row.variant = variant_of(t);
          auto times = cuda::time_on_stream(s, o.warmup, o.iters, [&] {
            runner.run(x.get<__nv_bfloat16>(), x32.get<float>(),
                       gate.get<float>(), n, cuda::ffn_path::decode,
                       out.get<float>(), true, s);
          });
          summarise(times, row);
          finish_row(row, n);
        }
      }
      cuda::set_decode_tuning(tuning);
      runner.clear_graphs();
    }
    for (auto t : o.tokens) {
      std::vector<cuda::ffn_path> paths;
      if (o.path == "decode" || (o.path == "all" && t <= 512))
        paths.push_back(cuda::ffn_path::decode);
      if (o.path == "gemm" || o.path == "all")
        paths.push_back(cuda::ffn_path::gemm);
      if (o.path == "auto")
        paths.push_back(cuda::ffn_path::automatic);
      for (auto p : paths) {
        moe_bench_row row;
        row.tokens = t;
        cuda::ffn_path taken = p;
        auto times = cuda::time_on_stream(s, o.warmup, o.iters, [&] {
          taken = runner.run(x.get<__nv_bfloat16>(), x32.get<float>(),
                             gate.get<float>(), t, p, out.get<float>(), true,
                             s);
        });
        row.path = taken == cuda::ffn_path::decode ? "decode" : "gemm";
        if (taken == cuda::ffn_path::decode)
          row.variant = variant_of(tuning);
        summarise(times, row);
        finish_row(row, t);
      }
    }
    // The fused gating kernel alone.
    {
      device_buffer logits(sizeof(float) * o.gating_tokens * o.experts);
      device_buffer ids(sizeof(int32_t) * o.gating_tokens * o.topk);
      device_buffer weights(sizeof(float) * o.gating_tokens * o.topk);
      cuda::fill_uniform(logits.get<float>(), o.gating_tokens * o.experts, 4.0f,
                         o.seed + 7, s);
      // One kernel takes microseconds: time 20 back-to-back calls per sample
      // (scripts/bench_torch_moe.py times torch the same way).
      constexpr int repeat = 20;
      auto times
        = cuda::time_on_stream(s, o.warmup, std::max<int64_t>(o.iters, 50), [&] {
            for (int r = 0; r < repeat; ++r)
              cuda::topk_gating(logits.get<float>(), o.gating_tokens, o.experts,
                                o.topk, ids.get<int32_t>(),
                                weights.get<float>(), s);
          });
      std::sort(times.begin(), times.end());
      res.gating_ms = times[times.size() / 2] / repeat;
    }
    CUDA_CHECK(cudaStreamSynchronize(s));
    return res;
  } catch (const std::exception& ex) {
    return make_volt_error(volt_errc::internal, ex.what());
  }
}

} // namespace volt

#else // VOLT_HAVE_CUDA

namespace volt {

caf::expected<moe_bench_result> run_moe_bench_cuda(const moe_bench_options& o) {
  return make_volt_error(volt_errc::invalid_config,
                         "volt-node was built without CUDA; --device cuda:"
                           + std::to_string(o.device) + " needs a CUDA build");
}

} // namespace volt

#endif // VOLT_HAVE_CUDA
