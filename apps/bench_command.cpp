// `volt-node bench moe-layer`: times one Mixtral MoE block (router, top-k
// gating, dispatch, expert SwiGLU FFN, combine) on random weights, per token
// count, and prints the median against the memory floor (the active experts'
// weight bytes over the measured device copy bandwidth).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <set>
#include <string>

#include "apps/bench_moe.hpp"
#include "apps/cli_args.hpp"
#include "apps/commands.hpp"
#include "base/error.hpp"
#include "gpu/cpu/cpu_ops.hpp"
#include "gpu/cpu/quant.hpp"
#include "model/forward.hpp"
#include "model/json.hpp"

namespace volt {

namespace {

const std::vector<flag_spec> bench_flags = {
  {"device", true, "cuda:N or cpu (default cuda:0)"},
  {"dtype", true, "expert weights: bf16 (default) or int8"},
  {"tokens", true,
   "token counts, comma-separated (default 1,8,32,128,512,2048)"},
  {"hidden", true, "hidden size (default 4096)"},
  {"ffn", true, "expert intermediate size (default 14336)"},
  {"experts", true, "experts in the layer (default 8)"},
  {"topk", true, "experts per token (default 2)"},
  {"iters", true, "timed runs per token count (default 50)"},
  {"warmup", true, "untimed runs first (default 5)"},
  {"path", true, "FFN path: auto (default), decode, gemm or all (CUDA only)"},
  {"gating-tokens", true, "tokens for the gating kernel timing (default 4096)"},
  {"decode-chunks", true,
   "decode kernel: 16-byte loads per thread and row, 1 or 2"},
  {"w13-splits", true, "decode kernel: K splits of w1/w3 (1, 2 or 4)"},
  {"w2-splits", true, "decode kernel: K splits of w2 (1, 2 or 4)"},
  {"sweep-decode", false, "also time every decode variant up to 128 tokens"},
  {"json", false, "print one JSON object instead of a table"},
  {"help", false, "print this help"},
};

/// Weight type the run used: bf16 or int8 on the GPU, f32 or int8 on the CPU.
const char* dtype_name(const moe_bench_options& o) {
  return o.int8 ? "int8" : o.device < 0 ? "f32" : "bf16";
}

double median_of(std::vector<double>& xs) {
  std::sort(xs.begin(), xs.end());
  return xs[xs.size() / 2];
}

/// The CPU twin of the benchmark (float32 or int8 weights): the reference
/// path, slow at Mixtral sizes; useful with small --hidden/--ffn.
moe_bench_result run_moe_bench_cpu(const moe_bench_options& o) {
  using clock = std::chrono::steady_clock;
  std::mt19937 gen(static_cast<uint32_t>(o.seed));
  auto randoms = [&](int64_t n, float a) {
    std::uniform_real_distribution<float> d(-a, a);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v)
      x = d(gen);
    return v;
  };
  const float a1 = 1.0f / std::sqrt(static_cast<float>(o.hidden));
  const float a2 = 1.0f / std::sqrt(static_cast<float>(o.ffn));
  struct expert {
    std::vector<float> w1, w3, w2;
    std::vector<int8_t> q1, q3, q2;
    std::vector<float> s1, s3, s2;
  };
  std::vector<expert> experts(static_cast<size_t>(o.experts));
  for (auto& e : experts) {
    e.w1 = randoms(o.ffn * o.hidden, a1);
    e.w3 = randoms(o.ffn * o.hidden, a1);
    e.w2 = randoms(o.hidden * o.ffn, a2);
    if (o.int8) {
      auto quant = [](const std::vector<float>& w, int64_t rows,
                      std::vector<int8_t>& q, std::vector<float>& s) {
        q.resize(w.size());
        s.resize(static_cast<size_t>(rows));
        cpu::quantize_int8_rows(w.data(), rows,
                                static_cast<int64_t>(w.size()) / rows, q.data(),
                                s.data());
      };
      quant(e.w1, o.ffn, e.q1, e.s1);
      quant(e.w3, o.ffn, e.q3, e.s3);
      quant(e.w2, o.hidden, e.q2, e.s2);
    }
  }
  auto gate = randoms(o.experts * o.hidden, a1);
  moe_bench_result res;
  res.device = "cpu";
  res.expert_bytes = static_cast<uint64_t>(3 * o.ffn * o.hidden)
                       * (o.int8 ? 1 : sizeof(float))
                     + (o.int8 ? sizeof(float) * (2 * o.ffn + o.hidden) : 0);
  for (auto t : o.tokens) {
    auto x = randoms(t * o.hidden, 1.0f);
    std::vector<float> logits(static_cast<size_t>(t * o.experts));
    std::vector<int32_t> ids(static_cast<size_t>(t * o.topk));
    std::vector<float> weights(ids.size());
    std::vector<double> times;
    int64_t active = 0;
    for (int64_t it = 0; it < o.warmup + o.iters; ++it) {
      auto start = clock::now();
      cpu::matmul_nt(x.data(), gate.data(), t, o.hidden, o.experts,
                     logits.data());
      cpu::topk_gating(logits.data(), t, o.experts, o.topk, ids.data(),
                       weights.data());
      auto plan = plan_dispatch(ids, t, o.topk, o.experts);
      std::vector<float> rows(static_cast<size_t>(t * o.topk * o.hidden));
      for (size_t r = 0; r < plan.row_token.size(); ++r)
        std::copy_n(x.data() + plan.row_token[r] * o.hidden, o.hidden,
                    rows.data() + r * o.hidden);
      std::vector<float> y(rows.size());
      size_t offset = 0;
      for (size_t g = 0; g < plan.expert_ids.size(); ++g) {
        const auto& e = experts[plan.expert_ids[g]];
        int64_t m = plan.row_counts[g];
        std::vector<float> scratch(static_cast<size_t>(2 * m * o.ffn));
        const float* in = rows.data() + offset * o.hidden;
        float* out = y.data() + offset * o.hidden;
        if (o.int8)
          cpu::swiglu_expert_int8(in, e.q1.data(), e.s1.data(), e.q3.data(),
                                  e.s3.data(), e.q2.data(), e.s2.data(), m,
                                  o.hidden, o.ffn, scratch.data(), out);
        else
          cpu::swiglu_expert(in, e.w1.data(), e.w3.data(), e.w2.data(), m,
                             o.hidden, o.ffn, scratch.data(), out);
        offset += static_cast<size_t>(m);
      }
      std::vector<float> hidden(static_cast<size_t>(t * o.hidden), 0.0f);
      combine(plan, weights, o.topk, y.data(), o.hidden, hidden);
      auto ms = std::chrono::duration<double, std::milli>(clock::now() - start)
                  .count();
      if (it >= o.warmup)
        times.push_back(ms);
      active = static_cast<int64_t>(plan.expert_ids.size());
    }
    moe_bench_row row;
    row.tokens = t;
    row.path = "cpu";
    row.min_ms = *std::min_element(times.begin(), times.end());
    row.max_ms = *std::max_element(times.begin(), times.end());
    row.median_ms = median_of(times);
    row.active_experts = active;
    res.rows.push_back(row);
  }
  return res;
}

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, x);
  return buf;
}

void print_table(const moe_bench_options& o, const moe_bench_result& r) {
  std::printf("moe-layer on %s, %s, hidden %lld, ffn %lld, %lld experts, "
              "top-%lld, %lld iters\n",
              r.device.c_str(), dtype_name(o), static_cast<long long>(o.hidden),
              static_cast<long long>(o.ffn), static_cast<long long>(o.experts),
              static_cast<long long>(o.topk), static_cast<long long>(o.iters));
  if (r.copy_gbs > 0)
    std::printf("device copy bandwidth %.0f GB/s (read + write); one expert "
                "%.1f MB; all experts %.1f MB\n",
                r.copy_gbs, r.expert_bytes / 1e6,
                r.expert_bytes * o.experts / 1e6);
  std::printf("%8s %7s %10s %12s %7s %10s %7s  %s\n", "tokens", "path",
              "median_ms", "tokens/s", "active", "floor_ms", "ratio",
              "variant");
  for (const auto& row : r.rows)
    std::printf("%8lld %7s %10.4f %12.0f %7lld %10s %7s  %s\n",
                static_cast<long long>(row.tokens), row.path.c_str(),
                row.median_ms, row.tokens / (row.median_ms * 1e-3),
                static_cast<long long>(row.active_experts),
                row.floor_ms > 0 ? fmt("%.4f", row.floor_ms).c_str() : "-",
                row.floor_ms > 0
                  ? fmt("%.2f", row.median_ms / row.floor_ms).c_str()
                  : "-",
                row.variant.c_str());
  if (r.gating_ms > 0)
    std::printf("fused gating, %lld tokens x %lld experts, top-%lld: %.4f ms\n",
                static_cast<long long>(o.gating_tokens),
                static_cast<long long>(o.experts),
                static_cast<long long>(o.topk), r.gating_ms);
}

void print_json(const moe_bench_options& o, const moe_bench_result& r) {
  auto rows = json::value::array();
  for (const auto& row : r.rows)
    rows.push_back(
      {{"tokens", row.tokens},
       {"path", row.path},
       {"variant", row.variant},
       {"median_ms", json::rounded(row.median_ms, 5)},
       {"min_ms", json::rounded(row.min_ms, 5)},
       {"max_ms", json::rounded(row.max_ms, 5)},
       {"tokens_per_s", json::rounded(row.tokens / (row.median_ms * 1e-3), 1)},
       {"active_experts", row.active_experts},
       {"floor_ms", json::rounded(row.floor_ms, 5)},
       {"ratio",
        json::rounded(row.floor_ms > 0 ? row.median_ms / row.floor_ms : 0.0,
                      4)}});
  json::value out = {{"device", r.device},
                     {"dtype", dtype_name(o)},
                     {"hidden", o.hidden},
                     {"ffn", o.ffn},
                     {"experts", o.experts},
                     {"topk", o.topk},
                     {"iters", o.iters},
                     {"copy_gbs", json::rounded(r.copy_gbs, 1)},
                     {"expert_bytes", r.expert_bytes},
                     {"gating_tokens", o.gating_tokens},
                     {"gating_ms", json::rounded(r.gating_ms, 6)},
                     {"rows", rows}};
  std::printf("%s\n", json::dump(out).c_str());
}

caf::expected<moe_bench_options> parse_options(const cli_args& args) {
  auto bad = [](std::string why) {
    return make_volt_error(volt_errc::invalid_config, std::move(why));
  };
  moe_bench_options o;
  auto device = args.get_device("device", "cuda:0");
  if (!device)
    return std::move(device.error());
  o.device = *device;
  auto dtype = args.get("dtype", "bf16");
  if (dtype != "bf16" && dtype != "int8")
    return bad("--dtype: expected bf16 or int8, got '" + dtype + "'");
  o.int8 = dtype == "int8";
  o.path = args.get("path", "auto");
  if (o.path != "auto" && o.path != "decode" && o.path != "gemm"
      && o.path != "all")
    return bad("--path: expected auto, decode, gemm or all, got '" + o.path
               + "'");
  if (args.has("tokens")) {
    auto t = args.get_int_list("tokens", 1, 1 << 20);
    if (!t)
      return t.error();
    o.tokens = *t;
  } else {
    o.tokens = {1, 8, 32, 128, 512, 2048};
  }
  if (o.tokens.empty())
    return bad("--tokens: expected at least one token count");
  struct int_flag {
    const char* name;
    int64_t* field;
    int64_t lo, hi;
  };
  for (auto f :
       {int_flag{"hidden", &o.hidden, 64, 1 << 16},
        int_flag{"ffn", &o.ffn, 64, 1 << 18},
        int_flag{"experts", &o.experts, 1, 256},
        int_flag{"topk", &o.topk, 1, 8}, int_flag{"iters", &o.iters, 1, 100000},
        int_flag{"warmup", &o.warmup, 0, 100000},
        int_flag{"gating-tokens", &o.gating_tokens, 1, 1 << 20},
        int_flag{"decode-chunks", &o.decode_chunks, 0, 2},
        int_flag{"w13-splits", &o.w13_splits, 0, 4},
        int_flag{"w2-splits", &o.w2_splits, 0, 4}}) {
    auto v = args.get_int(f.name, *f.field, f.lo, f.hi);
    if (!v)
      return v.error();
    *f.field = *v;
  }
  o.sweep_decode = args.has("sweep-decode");
  if (o.topk > o.experts)
    return bad("--topk: " + std::to_string(o.topk) + " exceeds --experts "
               + std::to_string(o.experts));
  return o;
}

} // namespace

int run_bench_command(const std::vector<std::string>& raw_args) {
  if (!raw_args.empty() && raw_args[0] == "dispatch")
    return run_bench_dispatch({raw_args.begin() + 1, raw_args.end()});
  if (!raw_args.empty() && raw_args[0] == "serve")
    return run_bench_serve({raw_args.begin() + 1, raw_args.end()});
  if (!raw_args.empty() && raw_args[0] == "model")
    return run_bench_model({raw_args.begin() + 1, raw_args.end()});
  if (!raw_args.empty() && raw_args[0] == "http")
    return run_bench_http({raw_args.begin() + 1, raw_args.end()});
  if (!raw_args.empty() && raw_args[0] == "prefetch")
    return run_bench_prefetch({raw_args.begin() + 1, raw_args.end()});
  if (!raw_args.empty() && raw_args[0] == "link")
    return run_bench_link({raw_args.begin() + 1, raw_args.end()});
  if (raw_args.empty() || raw_args[0] != "moe-layer") {
    std::fprintf(
      stderr, "volt-node: bench: expected 'moe-layer', 'dispatch', 'serve', "
              "'model', 'http', 'prefetch' or 'link' (try volt-node bench model --help)\n");
    return exit_bad_input;
  }
  auto args = cli_args::parse({raw_args.begin() + 1, raw_args.end()},
                              bench_flags);
  if (!args)
    return report_error(args.error());
  if (args->has("help")) {
    std::printf("usage: volt-node bench moe-layer [flags]\n%s",
                render_flags(bench_flags).c_str());
    return 0;
  }
  auto o = parse_options(*args);
  if (!o)
    return report_error(o.error());
  caf::expected<moe_bench_result> r = caf::error{};
  if (o->device < 0)
    r = run_moe_bench_cpu(*o);
  else
    r = run_moe_bench_cuda(*o);
  if (!r)
    return report_error(r.error());
  if (args->has("json"))
    print_json(*o, *r);
  else
    print_table(*o, *r);
  return 0;
}

} // namespace volt
