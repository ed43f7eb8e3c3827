// `volt-node bench model`: a whole model served by a standalone engine in
// this process, as a user runs it: time to load, host memory, prefill
// tokens/s, decode ms per step at several batch sizes, each against its floor
// (bytes the step must read ÷ the measured copy bandwidth; FLOPs ÷ the
// measured bf16 matrix rate), and optionally the last prompt position's
// logits against the float32 CPU executor on the same checkpoint. With
// --connect, the same requests go to a running router or standalone node
// instead, and with --metrics each row adds what its node's counters say
// about the network: tensor bytes on the wire per token and layer, and the
// share of the steps spent waiting for expert hosts.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include <prometheus/registry.h>

#include "actors/standalone.hpp"
#include "apps/bench_target.hpp"
#include "apps/cli_args.hpp"
#include "apps/commands.hpp"
#include "apps/link_security.hpp"
#include "apps/remote_client.hpp"
#include "base/error.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "config/endpoint.hpp"
#include "model/json.hpp"
#include "model/model_config.hpp"
#include "net/actor_system_setup.hpp"

#ifdef VOLT_HAVE_CUDA
#  include "gpu/cuda/chained_launch.cuh"
#  include "gpu/cuda/device_buffer.hpp"
#  include "gpu/cuda/device_peaks.hpp"
#  include "gpu/cuda/expert_ffn.cuh"
#endif

namespace volt {

namespace {

const std::vector<flag_spec> model_flags = {
  {"model", true,
   "checkpoint folder (with --connect: the one the node serves, for its "
   "config.json)"},
  {"connect", true,
   "HOST:PORT of a running router or standalone node to send the requests "
   "to instead of one in this process; its configuration decides devices, "
   "batching ([engine] max_batch, prefill_chunk) and the KV pool"},
  {"metrics", true,
   "with --connect: HOST:PORT of that node's [metrics] endpoint; each row "
   "then adds tensor bytes on the wire per token and layer and the share of "
   "its steps spent waiting for expert hosts"},
  {"wait-seconds", true,
   "with --connect: how long to wait for the node to be reachable and ready "
   "(default 60)"},
  {"device", true, "where the model runs: cuda:N or cpu (default cuda:0)"},
  {"quantization", true, "experts on the GPU: none (bf16) or int8"},
  {"batch", true, "decode batch sizes, comma-separated (default 1,8,32)"},
  {"prompt", true, "prefill lengths, comma-separated (default 512,2048)"},
  {"decode-prompt", true, "prompt tokens of the decode runs (default 128)"},
  {"new-tokens", true, "tokens per decode request (default 64)"},
  {"prefill-attention", true,
   "attention of prompt chunks on a GPU: tensor-cores or simt (default "
   "tensor-cores)"},
  {"activations", true,
   "how the GPU carries activations into its products: bf16 (default) or "
   "float32 (bf16 pairs; [model] activations)"},
  {"expert-slots", true,
   "experts (all layers together) kept on the GPU at once, the rest in "
   "pinned host memory: the expert cache ([worker] gpu_expert_slots; "
   "default 0: all resident)"},
  {"prefetch", false,
   "with --expert-slots: the prefetch predictor stages the experts it "
   "expects (without: on-demand loading, least recently used evicted)"},
  {"expert-misses", true,
   "with --expert-slots: where a miss runs, auto (default), load or host "
   "([worker] expert_misses)"},
  {"dense-decode-rows", true,
   "steps of up to this many rows run the attention projections and the LM "
   "head through the experts' decode kernel, larger ones through cuBLAS "
   "(default 32; 0: always cuBLAS)"},
  {"chained-launch", true,
   "on (default) or off: a decode step's kernels start while the kernel "
   "ahead of them finishes (programmatic dependent launch)"},
  {"check-cpu", true,
   "also run a prompt of this many tokens on the float32 CPU executor and "
   "compare the last position's logits (default 0: no)"},
  {"json", false, "print one JSON object instead of a table"},
  {"help", false, "print this help"},
};

/// With the flags of a client's TLS files.
const std::vector<flag_spec> all_model_flags = with_flags(model_flags,
                                                          client_tls_flags());

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

/// VmRSS and VmHWM of this process in MiB.
std::pair<double, double> resident_mib() {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  double rss = 0;
  double peak = 0;
  while (std::getline(in, line)) {
    std::istringstream fields{line};
    std::string key;
    double kib = 0;
    fields >> key >> kib;
    if (key == "VmRSS:")
      rss = kib / 1024;
    else if (key == "VmHWM:")
      peak = kib / 1024;
  }
  return {rss, peak};
}

generate_request request_for_bench(std::vector<int32_t> prompt,
                                   uint32_t new_tokens) {
  generate_request req;
  req.prompt = std::move(prompt);
  req.max_new_tokens = new_tokens;
  req.ignore_eos = true;
  return req;
}

/// Token ids of a xorshift stream: prompts that never share a cached page.
std::vector<int32_t> random_prompt(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
  for (auto& t : p) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t = static_cast<int32_t>(x % static_cast<uint64_t>(vocab));
  }
  return p;
}

/// Weight bytes of the dense part of one layer and of one expert (bf16, or
/// int8 with f32 scales), and the LM head.
struct model_bytes {
  double dense_layer = 0;
  double expert = 0;
  double lm_head = 0;
  double kv_token_layer = 0; // K and V of one token in one layer
};

model_bytes bytes_of(const model_config& c, weight_quantization q) {
  model_bytes b;
  double h = c.hidden_size;
  double qd = c.num_attention_heads * c.head_dim;
  double kv = c.num_key_value_heads * c.head_dim;
  b.dense_layer = 2 * (qd + 2 * kv) * h + 2 * h * qd + 4 * 2 * h
                  + 4 * c.num_local_experts * h;
  double params = 3 * h * c.intermediate_size;
  b.expert = q == weight_quantization::int8
               ? params + 4 * (2 * c.intermediate_size + h)
               : 2 * params;
  b.lm_head = 2 * c.vocab_size * h;
  b.kv_token_layer = 2 * 2 * kv;
  return b;
}

/// Expected distinct experts of `tokens` tokens picking k of e uniformly.
double expected_experts(double tokens, double k, double e) {
  return e * (1 - std::pow(1 - k / e, tokens));
}

/// FLOPs of a prefill of n tokens (every row through every layer, the LM
/// head on the last row only).
double prefill_flops(const model_config& c, double n) {
  double h = c.hidden_size;
  double qd = c.num_attention_heads * c.head_dim;
  double kv = c.num_key_value_heads * c.head_dim;
  double per_token = 2 * ((qd + 2 * kv) * h + qd * h + c.num_local_experts * h
                          + c.num_experts_per_tok * 3 * h
                              * c.intermediate_size);
  // Causal attention: n²/2 query-key pairs, QKᵀ and PV.
  double attention = 2 * 2 * (n * (n + 1) / 2) * qd;
  return c.num_hidden_layers * (n * per_token + attention) + 2 * h * c.vocab_size;
}

/// The expert cache's counters over a run (bench_target's metrics).
struct cache_reading {
  double hits = 0;
  double misses = 0;
  double bytes = 0;
  double stall_seconds = 0;

  static cache_reading take(const node_metrics& m) {
    cache_reading r;
    for (const auto& family : m.registry()->Collect()) {
      double sum = 0;
      for (const auto& metric : family.metric)
        sum += metric.counter.value;
      if (family.name == "voltinfer_expert_cache_hits_total")
        r.hits = sum;
      else if (family.name == "voltinfer_expert_cache_misses_total")
        r.misses = sum;
      else if (family.name == "voltinfer_expert_cache_bytes_total")
        r.bytes = sum;
      else if (family.name == "voltinfer_expert_cache_stall_seconds_total")
        r.stall_seconds = sum;
    }
    return r;
  }

  cache_reading since(const cache_reading& before) const {
    return {hits - before.hits, misses - before.misses, bytes - before.bytes,
            stall_seconds - before.stall_seconds};
  }
};

struct decode_row {
  int64_t batch = 0;
  double step_ms = 0;
  double floor_ms = 0;
  double experts_per_layer = 0;
  /// With --expert-slots: the cache over the row's run, per step.
  std::optional<cache_reading> cache;
  int64_t steps = 0;
  std::vector<int32_t> new_tokens; // of the batch's first request
  std::optional<network_cost> network;
};

struct prefill_row {
  int64_t tokens = 0;
  double seconds = 0;
  double tflops = 0;
  std::vector<int32_t> new_tokens; // of the last run
  std::optional<network_cost> network;
};

caf::error flag_error(std::string what) {
  return make_volt_error(volt_errc::invalid_config, std::move(what));
}

/// Flags that only mean something for an engine in this process.
caf::error check_connect_flags(const cli_args& args) {
  if (args.has("connect")) {
    for (const char* local :
         {"device", "quantization", "prefill-attention", "activations",
          "check-cpu", "dense-decode-rows", "chained-launch",
          "expert-slots", "expert-misses", "prefetch"})
      if (args.has(local))
        return flag_error("--" + std::string{local}
                          + ": not with --connect (the node's configuration "
                            "decides)");
    if (!parse_endpoint(args.get("connect")))
      return flag_error("--connect: expected HOST:PORT, got '"
                        + args.get("connect") + "'");
  } else {
    for (const char* remote : {"metrics", "wait-seconds"})
      if (args.has(remote))
        return flag_error("--" + std::string{remote} + ": needs --connect");
    for (const auto& flag : client_tls_flags())
      if (args.has(flag.name))
        return flag_error("--" + flag.name + ": needs --connect");
  }
  if (args.has("metrics") && !parse_endpoint(args.get("metrics")))
    return flag_error("--metrics: expected HOST:PORT, got '"
                      + args.get("metrics") + "'");
  return {};
}

} // namespace

int run_bench_model(const std::vector<std::string>& raw_args) {
  auto args = cli_args::parse(raw_args, all_model_flags);
  if (!args)
    return report_error(args.error());
  if (args->has("help") || !args->has("model")) {
    std::printf("usage: volt-node bench model --model DIR [--connect "
                "HOST:PORT [--metrics HOST:PORT]] [flags]\n%s",
                render_flags(all_model_flags).c_str());
    return args->has("help") ? 0 : exit_bad_input;
  }
  if (auto err = check_connect_flags(*args))
    return report_error(err);
  const bool remote = args->has("connect");
  auto device = args->get_device("device", "cuda:0");
  if (!device)
    return report_error(device.error());
  auto quantization = args->get_quantization("quantization");
  if (!quantization)
    return report_error(quantization.error());
  auto misses = args->get_expert_misses("expert-misses");
  if (!misses)
    return report_error(misses.error());
  auto batches = args->get_int_list("batch", 1, 4096);
  auto prompts = args->get_int_list("prompt", 1, 1 << 20);
  auto decode_prompt = args->get_int("decode-prompt", 128, 1, 1 << 20);
  auto new_tokens = args->get_int("new-tokens", 64, 2, 1 << 20);
  auto check_cpu = args->get_int("check-cpu", 0, 0, 1 << 16);
  auto expert_slots = args->get_int("expert-slots", 0, 0, 1 << 20);
  auto wait = args->get_int("wait-seconds", 60, 0, 86400);
  auto dense_rows = args->get_int("dense-decode-rows", 32, 0, 4096);
  for (const auto* x : {&decode_prompt, &new_tokens, &check_cpu, &wait,
                        &expert_slots, &dense_rows})
    if (!*x)
      return report_error(x->error());
  if (!args->has("batch"))
    batches = std::vector<int64_t>{1, 8, 32};
  if (!args->has("prompt"))
    prompts = std::vector<int64_t>{512, 2048};
  if (!batches)
    return report_error(batches.error());
  if (!prompts)
    return report_error(prompts.error());
  auto attention = args->get("prefill-attention", "tensor-cores");
  if (attention != "tensor-cores" && attention != "simt")
    return report_error(flag_error("--prefill-attention: expected "
                                   "tensor-cores or simt, got '"
                                   + attention + "'"));
  auto chained = args->get("chained-launch", "on");
  if (chained != "on" && chained != "off")
    return report_error(flag_error("--chained-launch: expected on or off, "
                                   "got '" + chained + "'"));
#ifdef VOLT_HAVE_CUDA
  auto tuning = cuda::get_decode_tuning();
  tuning.dense_decode_max_rows = *dense_rows;
  cuda::set_decode_tuning(tuning);
  cuda::set_chained_launch(chained == "on");
#endif
  auto activations = args->get("activations", "bf16");
  if (activations != "bf16" && activations != "float32")
    return report_error(flag_error("--activations: expected bf16 or float32, "
                                   "got '" + activations + "'"));
  auto started = clock_type::now();
  // A node serves its own copy: here only its config.json is read.
  std::optional<checkpoint> ckpt;
  auto mc = remote ? read_model_config(args->get("model"))
                   : caf::expected<model_config>{model_config{}};
  if (!remote) {
    auto opened = checkpoint::open(args->get("model"));
    if (!opened)
      return report_error(opened.error());
    ckpt = std::move(*opened);
    mc = ckpt->config();
  }
  if (!mc)
    return report_error(mc.error());
  auto longest = std::max(*std::max_element(prompts->begin(), prompts->end()),
                          *decode_prompt + *new_tokens);
  if (longest > mc->max_position_embeddings)
    return report_error(flag_error(
      "--prompt / --decode-prompt + --new-tokens: " + std::to_string(longest)
      + " tokens exceed the model's context of "
      + std::to_string(mc->max_position_embeddings)));
  auto max_batch = *std::max_element(batches->begin(), batches->end());
  std::optional<tls_files> tls;
  if (remote) {
    auto loaded = client_link_tls(*args, process_environment());
    if (!loaded)
      return report_error(loaded.error());
    tls = std::move(*loaded);
  }
  caf::actor_system_config cfg;
  // With --connect this process is a peer of the node: it must beat (a
  // router drops peers that stay silent for its peer_timeout_ms).
  configure_actor_system(cfg, std::chrono::seconds{30}, tls ? &*tls : nullptr);
  caf::actor_system sys{cfg};
  bench_target target;
  std::shared_ptr<node_metrics> cache_metrics;
  if (remote) {
    auto where = parse_endpoint(args->get("connect"));
    target.name = render_endpoint(where->host, where->port);
    target.wait = std::chrono::seconds{*wait};
    if (args->has("metrics"))
      target.metrics = parse_endpoint(args->get("metrics"));
    auto eng = connect_engine(sys, *where, clock_type::now() + target.wait);
    if (!eng)
      return report_error(eng.error());
    target.engine = std::move(*eng);
  } else {
    standalone_options options;
    options.model_device = *device;
    options.model_device_origin = "--device";
    options.experts.quantization = *quantization;
    options.show_progress = !args->has("json");
    options.tensor_core_prefill = attention == "tensor-cores";
    options.precise_activations = activations == "float32";
    options.experts.slots = *expert_slots;
    options.experts.slots_origin = "--expert-slots";
    options.experts.misses = *misses;
    if (*expert_slots > 0) {
      cache_metrics = std::make_shared<node_metrics>("bench");
      options.engine.metrics = cache_metrics;
      if (args->has("prefetch"))
        options.engine.prefetch = prefetch::predictor_options{};
    }
    options.engine.batching.max_batch = static_cast<size_t>(max_batch);
    options.engine.batching.max_queue = static_cast<size_t>(max_batch);
    // A whole prompt in one step, so that prefill is timed as one pass.
    options.engine.batching.prefill_chunk = *std::max_element(prompts->begin(),
                                                              prompts->end());
    if (*device < 0)
      options.engine.num_pages = max_batch * (longest / 16 + 2);
    auto eng = spawn_standalone(sys, *ckpt, options);
    if (!eng)
      return report_error(eng.error());
    target.engine = std::move(*eng);
    target.name = "this process";
  }
  auto load_seconds = seconds_since(started);
  auto [rss_loaded, peak_loaded] = resident_mib();
  uint64_t seed = 1;
  // Warm-up: the first steps of each shape capture graphs and grow buffers.
  for (auto b : *batches) {
    std::vector<generate_request> reqs;
    for (int64_t i = 0; i < b; ++i) {
      auto r = request_for_bench(
        random_prompt(*decode_prompt, mc->vocab_size, seed++), 4);
      reqs.push_back(r);
    }
    if (auto res = target.run(sys, reqs); !res)
      return report_error(res.error());
  }
  // One prefill of each length first: first-use costs (kernel loading, the
  // allocator) stay out of the table, as on a server that has been up a while.
  for (auto p : *prompts)
    if (auto res = target.run(
          sys,
          {request_for_bench(random_prompt(p, mc->vocab_size, seed++), 1)});
        !res)
      return report_error(res.error());
  std::vector<prefill_row> prefill;
  for (auto p : *prompts) {
    auto counters = counter_reading::take(target);
    if (!counters)
      return report_error(counters.error());
    std::vector<double> secs;
    prefill_row row;
    for (int rep = 0; rep < 3; ++rep) {
      auto res = target.run(
        sys, {request_for_bench(random_prompt(p, mc->vocab_size, seed++), 1)});
      if (!res)
        return report_error(res.error());
      secs.push_back(res->front().prefill_seconds);
      row.new_tokens = res->front().new_tokens;
    }
    auto network = counters->cost("prefill", mc->num_hidden_layers);
    if (!network)
      return report_error(network.error());
    std::sort(secs.begin(), secs.end());
    row.tokens = p;
    row.seconds = secs[1];
    row.tflops = prefill_flops(*mc, static_cast<double>(p)) / secs[1] / 1e12;
    row.network = *network;
    prefill.push_back(row);
  }
  std::vector<decode_row> decode;
  for (auto b : *batches) {
    std::vector<generate_request> reqs;
    for (int64_t i = 0; i < b; ++i)
      reqs.push_back(
        request_for_bench(random_prompt(*decode_prompt, mc->vocab_size, seed++),
                          static_cast<uint32_t>(*new_tokens)));
    auto counters = counter_reading::take(target);
    if (!counters)
      return report_error(counters.error());
    std::optional<cache_reading> cache_before;
    if (cache_metrics)
      cache_before = cache_reading::take(*cache_metrics);
    auto res = target.run(sys, reqs);
    if (!res)
      return report_error(res.error());
    auto network = counters->cost("decode", mc->num_hidden_layers);
    if (!network)
      return report_error(network.error());
    std::vector<double> step_ms;
    for (const auto& r : *res)
      step_ms.push_back(r.decode_seconds * 1e3
                        / static_cast<double>(r.new_tokens.size() - 1));
    std::sort(step_ms.begin(), step_ms.end());
    decode_row row;
    row.batch = b;
    row.step_ms = step_ms[step_ms.size() / 2];
    row.experts_per_layer = b == 1
                              ? mc->num_experts_per_tok
                              : expected_experts(b, mc->num_experts_per_tok,
                                                 mc->num_local_experts);
    row.new_tokens = res->front().new_tokens;
    row.network = *network;
    row.steps = static_cast<int64_t>(res->front().new_tokens.size()) - 1;
    if (cache_before)
      row.cache = cache_reading::take(*cache_metrics).since(*cache_before);
    decode.push_back(row);
  }
  auto [rss_after, peak_after] = resident_mib();
  // Ceilings of the card, measured after the runs (their buffers would
  // otherwise shrink the KV pool). A node elsewhere has its own card.
  double copy_gbs = 0;
  double bf16_tflops = 0;
  std::string card = remote ? "node at " + target.name : "cpu";
#ifdef VOLT_HAVE_CUDA
  if (!remote && *device >= 0) {
    try {
      CUDA_CHECK(cudaSetDevice(*device));
      cudaDeviceProp prop{};
      CUDA_CHECK(cudaGetDeviceProperties(&prop, *device));
      card = prop.name;
      cuda::stream s;
      cublasHandle_t cublas = nullptr;
      CUBLAS_CHECK(cublasCreate(&cublas));
      copy_gbs = cuda::measure_copy_gbs(s.get());
      bf16_tflops = cuda::measure_bf16_tflops(cublas, s.get());
      cublasDestroy(cublas);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "volt-node: bench model: ceilings not measured: %s\n",
                   ex.what());
    }
  }
#endif
  auto mb = bytes_of(*mc, *quantization);
  for (auto& row : decode) {
    double ctx = *decode_prompt + *new_tokens / 2.0;
    double bytes = mc->num_hidden_layers
                     * (mb.dense_layer + row.experts_per_layer * mb.expert
                        + row.batch * ctx * mb.kv_token_layer)
                   + mb.lm_head;
    row.floor_ms = copy_gbs > 0 ? bytes / (copy_gbs * 1e9) * 1e3 : 0;
  }
  // The last prompt position's logits against the float32 CPU executor.
  double cpu_error = -1;
  if (*check_cpu > 0) {
    auto prompt = random_prompt(*check_cpu, mc->vocab_size, 12345);
    auto got = target.run(sys, {request_for_bench(prompt, 1)});
    if (!got)
      return report_error(got.error());
    caf::anon_send_exit(target.engine, caf::exit_reason::user_shutdown);
    standalone_options cpu_options;
    cpu_options.engine.num_pages = (*check_cpu + 16) / 16 + 1;
    auto cpu_eng = spawn_standalone(sys, *ckpt, cpu_options);
    if (!cpu_eng)
      return report_error(cpu_eng.error());
    bench_target cpu_target;
    cpu_target.engine = *cpu_eng;
    cpu_target.name = "this process";
    auto want = cpu_target.run(sys, {request_for_bench(prompt, 1)});
    if (!want)
      return report_error(want.error());
    std::vector<float> a;
    std::vector<float> b;
    unpack_f32(got->front().last_logits, a);
    unpack_f32(want->front().last_logits, b);
    double num = 0;
    double den = 0;
    for (size_t i = 0; i < b.size(); ++i) {
      num += (double{a[i]} - b[i]) * (double{a[i]} - b[i]);
      den += double{b[i]} * b[i];
    }
    cpu_error = std::sqrt(num / den);
    caf::anon_send_exit(*cpu_eng, caf::exit_reason::user_shutdown);
  } else if (!remote) {
    caf::anon_send_exit(target.engine, caf::exit_reason::user_shutdown);
  }
  if (args->has("json")) {
    auto prefill_json = json::value::array();
    for (const auto& p : prefill) {
      json::value row
        = {{"tokens", p.tokens},
           {"seconds", json::rounded(p.seconds, 5)},
           {"tokens_per_second", json::rounded(p.tokens / p.seconds, 1)},
           {"tflops", json::rounded(p.tflops, 1)},
           {"new_tokens", p.new_tokens}};
      add_network(row, p.network);
      prefill_json.push_back(std::move(row));
    }
    auto decode_json = json::value::array();
    for (const auto& d : decode) {
      json::value row
        = {{"batch", d.batch},
           {"step_ms", json::rounded(d.step_ms, 4)},
           {"floor_ms", json::rounded(d.floor_ms, 4)},
           {"experts_per_layer", json::rounded(d.experts_per_layer, 2)},
           {"new_tokens", d.new_tokens}};
      add_network(row, d.network);
      if (d.cache) {
        const auto& c = *d.cache;
        auto needed = c.hits + c.misses;
        row["cache_hit_rate"]
          = json::rounded(needed > 0 ? c.hits / needed : 0.0, 4);
        row["cache_gb_per_step"]
          = json::rounded(c.bytes / 1e9 / std::max<int64_t>(d.steps, 1), 4);
        row["cache_stall_ms_per_step"] = json::rounded(
          c.stall_seconds * 1e3 / std::max<int64_t>(d.steps, 1), 4);
      }
      decode_json.push_back(std::move(row));
    }
    json::value out = {{"card", card}, {"layers", mc->num_hidden_layers}};
    if (!remote) {
      // What this process loaded and holds; a node's own are in its log.
      out["quantization"] = to_string(*quantization);
      out["activations"] = activations;
      out["load_seconds"] = json::rounded(load_seconds, 3);
      out["rss_mib_loaded"] = std::llround(rss_loaded);
      out["rss_mib_after"] = std::llround(rss_after);
      out["rss_mib_peak"] = std::llround(std::max(peak_loaded, peak_after));
    }
    out["copy_gbs"] = json::rounded(copy_gbs, 1);
    out["bf16_tflops"] = json::rounded(bf16_tflops, 1);
    out["cpu_logits_rel_error"] = cpu_error;
    out["prefill"] = std::move(prefill_json);
    out["decode"] = std::move(decode_json);
    std::printf("%s\n", json::dump(out).c_str());
    return 0;
  }
  if (remote)
    std::printf("%s, %lld layers\n", card.c_str(),
                static_cast<long long>(mc->num_hidden_layers));
  else
    std::printf("%s, %lld layers, experts %s: loaded in %.2f s, resident "
                "%.0f MiB (peak %.0f MiB); copy %.0f GB/s, bf16 %.0f "
                "TFLOP/s\n",
                card.c_str(), static_cast<long long>(mc->num_hidden_layers),
                to_string(*quantization).c_str(), load_seconds, rss_after,
                std::max(peak_loaded, peak_after), copy_gbs, bf16_tflops);
  for (const auto& p : prefill)
    std::printf("prefill %6lld tokens: %8.3f ms, %9.0f tokens/s, %6.1f "
                "TFLOP/s%s\n",
                static_cast<long long>(p.tokens), p.seconds * 1e3,
                p.tokens / p.seconds, p.tflops,
                network_text(p.network).c_str());
  for (const auto& d : decode) {
    std::printf("decode batch %4lld: %8.3f ms/step, floor %7.3f ms (%.2fx), "
                "%.1f experts/layer%s\n",
                static_cast<long long>(d.batch), d.step_ms, d.floor_ms,
                d.floor_ms > 0 ? d.step_ms / d.floor_ms : 0.0,
                d.experts_per_layer, network_text(d.network).c_str());
    if (d.cache) {
      const auto& c = *d.cache;
      auto steps = static_cast<double>(std::max<int64_t>(d.steps, 1));
      std::printf("  expert cache: %.1f %% hits, %.3f GB copied and %.3f ms "
                  "stalled per step\n",
                  c.hits + c.misses > 0 ? 100 * c.hits / (c.hits + c.misses)
                                        : 0.0,
                  c.bytes / 1e9 / steps, c.stall_seconds * 1e3 / steps);
    }
  }
  if (cpu_error >= 0)
    std::printf("last-position logits vs the float32 CPU executor: %.2e "
                "relative\n",
                cpu_error);
  return 0;
}

} // namespace volt
