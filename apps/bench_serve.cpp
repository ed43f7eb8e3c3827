// `volt-node bench serve`: generated tokens/s and per-token latency of a
// standalone node (in this process) under 1, 8, 32, 64 concurrent requests,
// its experts on the CPU or on a CUDA device.

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "actors/standalone.hpp"
#include "apps/bench_stats.hpp"
#include "apps/cli_args.hpp"
#include "gpu/cpu/parallel.hpp"
#include "apps/commands.hpp"
#include "base/error.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/scoped_actor.hpp"
#include "model/json.hpp"
#include "net/actor_system_setup.hpp"

namespace volt {

namespace {

const std::vector<flag_spec> serve_flags = {
  {"model", true, "checkpoint folder"},
  {"concurrency", true,
   "concurrent requests per run, comma-separated (default 1,8,32,64)"},
  {"prompt-tokens", true, "prompt length (default 32)"},
  {"shared-prefix", true,
   "leading prompt tokens shared by every request (default 0)"},
  {"new-tokens", true, "tokens generated per request (default 64)"},
  {"device", true,
   "where the model runs: cpu or cuda:N, the whole step on the GPU (default "
   "cpu)"},
  {"quantization", true,
   "weights of CUDA experts: none (bf16) or int8 (default none)"},
  {"compute-threads", true,
   "threads for the engine's attention and logits, as [engine] "
   "compute_threads (default 0: one per core)"},
  {"rows-per-part", true,
   "rows of attention and logits per thread's part, as [engine] "
   "rows_per_part (default 0: 8 with 8 or more compute threads, else 32)"},
  {"json", false, "print one JSON object instead of a table"},
  {"help", false, "print this help"},
};

struct serve_result {
  int64_t concurrency = 0;
  double seconds = 0;
  double tokens_per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

/// Runs `c` requests at once and waits for all of them.
caf::expected<serve_result> run_round(caf::actor_system& sys,
                                      const engine_actor& eng, int64_t c,
                                      int64_t prompt_tokens, int64_t shared,
                                      int64_t new_tokens, int64_t vocab) {
  caf::scoped_actor self{sys};
  std::vector<decltype(self->request(eng, caf::infinite, generate_atom_v,
                                     generate_request{}))>
    pending;
  auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < c; ++i) {
    generate_request req;
    for (int64_t j = 0; j < prompt_tokens; ++j)
      req.prompt.push_back(static_cast<int32_t>(
        (j < shared ? j * 7 + 3 : i * 131 + j * 17 + 5) % vocab));
    req.max_new_tokens = static_cast<uint32_t>(new_tokens);
    req.ignore_eos = true;
    pending.push_back(self->request(eng, caf::infinite, generate_atom_v, req));
  }
  std::vector<double> per_token_ms;
  int64_t generated = 0;
  caf::error failure;
  for (auto& p : pending)
    p.receive(
      [&](const generate_result& res) {
        generated += static_cast<int64_t>(res.new_tokens.size());
        if (res.new_tokens.size() > 1)
          per_token_ms.push_back(
            res.decode_seconds * 1e3
            / static_cast<double>(res.new_tokens.size() - 1));
      },
      [&](caf::error& err) { failure = std::move(err); });
  if (failure)
    return failure;
  serve_result r;
  r.concurrency = c;
  r.seconds
    = std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
        .count();
  r.tokens_per_second = static_cast<double>(generated) / r.seconds;
  r.p50_ms = percentile(per_token_ms, 0.5);
  r.p99_ms = percentile(per_token_ms, 0.99);
  return r;
}

} // namespace

int run_bench_serve(const std::vector<std::string>& raw_args) {
  auto args = cli_args::parse(raw_args, serve_flags);
  if (!args)
    return report_error(args.error());
  if (args->has("help") || !args->has("model")) {
    std::printf("usage: volt-node bench serve --model DIR [flags]\n%s",
                render_flags(serve_flags).c_str());
    return args->has("help") ? 0 : exit_bad_input;
  }
  auto levels = args->has("concurrency")
                  ? args->get_int_list("concurrency", 1, 4096)
                  : std::vector<int64_t>{1, 8, 32, 64};
  if (!levels)
    return report_error(levels.error());
  auto prompt = args->get_int("prompt-tokens", 32, 1, 1 << 20);
  auto shared = args->get_int("shared-prefix", 0, 0, 1 << 20);
  auto new_tokens = args->get_int("new-tokens", 64, 1, 1 << 20);
  auto threads = args->get_int("compute-threads", 0, 0, 1024);
  auto rows_per_part = args->get_int("rows-per-part", 0, 0, 4096);
  for (const auto* x :
       {&prompt, &shared, &new_tokens, &threads, &rows_per_part})
    if (!*x)
      return report_error(x->error());
  auto device = args->get_device("device", "cpu");
  if (!device)
    return report_error(device.error());
  auto quantization = args->get_quantization("quantization");
  if (!quantization)
    return report_error(quantization.error());
  cpu::set_compute_threads(static_cast<int>(*threads));
  cpu::set_rows_per_part(*rows_per_part);
  auto ckpt = checkpoint::open(args->get("model"));
  if (!ckpt)
    return report_error(ckpt.error());
  const auto& mc = ckpt->config();
  // Checked here rather than by the engine mid-run: the table would otherwise
  // hold refused or shortened requests.
  if (*shared > *prompt)
    return report_error(make_volt_error(
      volt_errc::invalid_config, "--shared-prefix " + std::to_string(*shared)
                                   + " exceeds --prompt-tokens "
                                   + std::to_string(*prompt)));
  if (*prompt + *new_tokens > mc.max_position_embeddings)
    return report_error(make_volt_error(
      volt_errc::invalid_config,
      "--prompt-tokens " + std::to_string(*prompt) + " + --new-tokens "
        + std::to_string(*new_tokens) + " exceed the model's context of "
        + std::to_string(mc.max_position_embeddings) + " tokens"));
  auto max_level = *std::max_element(levels->begin(), levels->end());
  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  caf::actor_system sys{cfg};
  standalone_options options;
  options.model_device = *device;
  options.experts.quantization = *quantization;
  options.model_device_origin = "--device";
  options.engine.batching.max_batch = static_cast<size_t>(max_level);
  options.engine.batching.max_queue = static_cast<size_t>(max_level);
  // Room for every request of the largest round at once.
  auto per_seq = (*prompt + *new_tokens + options.engine.page_size - 1)
                 / options.engine.page_size;
  options.engine.num_pages = per_seq * max_level;
  auto eng = spawn_standalone(sys, *ckpt, options);
  if (!eng)
    return report_error(eng.error());
  // Warm-up: a short round at the largest concurrency, so that first-touch
  // costs (the allocator growing to the widest prefill's buffers) stay out of
  // the table; measured on the dev VM, a first round of 32 requests after a
  // warm-up of one request ran 10-15 % slower than the next round.
  if (auto warm = run_round(sys, *eng, max_level, *prompt, *shared,
                            std::min<int64_t>(*new_tokens, 4), mc.vocab_size);
      !warm)
    return report_error(warm.error());
  std::vector<serve_result> results;
  for (auto c : *levels) {
    auto r = run_round(sys, *eng, c, *prompt, *shared, *new_tokens,
                       mc.vocab_size);
    if (!r)
      return report_error(r.error());
    results.push_back(*r);
  }
  caf::anon_send_exit(*eng, caf::exit_reason::user_shutdown);
  if (args->has("json")) {
    auto rows = json::value::array();
    for (const auto& r : results)
      rows.push_back(
        {{"concurrency", r.concurrency},
         {"tokens_per_second", json::rounded(r.tokens_per_second, 1)},
         {"p50_ms_per_token", json::rounded(r.p50_ms, 3)},
         {"p99_ms_per_token", json::rounded(r.p99_ms, 3)}});
    json::value out = {{"prompt_tokens", *prompt},
                       {"new_tokens", *new_tokens},
                       {"results", rows}};
    std::printf("%s\n", json::dump(out).c_str());
    return 0;
  }
  std::printf("%12s %14s %10s %16s %16s\n", "concurrency", "tokens/s",
              "speed-up", "p50 ms/token", "p99 ms/token");
  for (const auto& r : results)
    std::printf("%12lld %14.1f %9.2fx %16.3f %16.3f\n",
                static_cast<long long>(r.concurrency), r.tokens_per_second,
                r.tokens_per_second / results.front().tokens_per_second,
                r.p50_ms, r.p99_ms);
  return 0;
}

} // namespace volt
