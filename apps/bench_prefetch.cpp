// `volt-node bench prefetch`: runs a model over a text or a list of token
// ids one token per sequence per step, as decoding does, and reports per
// layer and overall the recall and precision of the experts each prefetch
// predictor would stage against those the router then chose, and how many
// it staged per layer. On a GPU (--device) with an expert cache
// (--expert-slots) it also reports the cache's hits, copies and stalls and
// the decode speed; --record-routing keeps the routing as a trace, and
// --routing-trace replays one on another model (a random-weight checkpoint
// then routes as a trained model does on real text).

#include <cctype>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>

#include "actors/standalone.hpp"
#include "apps/cli_args.hpp"
#include "apps/commands.hpp"
#include "base/error.hpp"
#include "gpu/cpu/parallel.hpp"
#include "model/file_io.hpp"
#include "model/json.hpp"
#include "prefetch/replay.hpp"
#include "prefetch/routing_trace.hpp"
#include "text/tokenizer.hpp"

namespace volt {

namespace {

const std::vector<flag_spec> prefetch_flags = {
  {"model", true, "checkpoint folder"},
  {"text", true, "text file, tokenised with the checkpoint's tokenizer"},
  {"ids", true, "file of token ids separated by spaces, commas or newlines"},
  {"tokens", true, "replay only the first N tokens (default: all)"},
  {"window", true,
   "tokens per sequence: the input is cut into sequences of this many "
   "(default 512, at most the model's context)"},
  {"batch", true, "sequences decoded together per step (default 1)"},
  {"ngram-order", true, "[prefetch] ngram_order (default 3)"},
  {"lookahead-tokens", true, "[prefetch] lookahead_tokens (default 1)"},
  {"max-staged", true,
   "[prefetch] max_staged: most experts staged per layer (default 0: twice "
   "top-k)"},
  {"min-chance-percent", true, "[prefetch] min_chance_percent (default 10)"},
  {"device", true,
   "where the model runs: cpu (default) or cuda:N (the CUDA executor)"},
  {"quantization", true, "experts on the GPU: none (bf16) or int8"},
  {"expert-slots", true,
   "with a CUDA device: experts (all layers together) kept on the GPU at "
   "once, the rest in pinned host memory ([worker] gpu_expert_slots; "
   "default 0: all resident)"},
  {"lru", false,
   "the predictor only scores the finished steps: an expert cache loads on "
   "demand and evicts the least recently used (without: it also learns "
   "from the routing what to evict)"},
  {"expert-misses", true,
   "with --expert-slots: where a miss runs, auto (default), load or host "
   "([worker] expert_misses)"},
  {"stage", false,
   "with --expert-slots: copy the experts the predictor expects ahead of "
   "each layer ([prefetch] stage_experts)"},
  {"record-routing", true,
   "write the routing the model chose for every token to FILE (a routing "
   "trace)"},
  {"routing-trace", true,
   "replay a routing trace: its tokens are the input and its experts "
   "replace the routers' choice (the model must have the trace's expert "
   "count and top-k; a deeper model repeats the trace's layers)"},
  {"json", false, "print one JSON object instead of a table"},
  {"help", false, "print this help"},
};

caf::error flag_error(std::string what) {
  return make_volt_error(volt_errc::invalid_config, std::move(what));
}

/// Token ids of --ids FILE, each checked against the vocabulary.
caf::expected<std::vector<int32_t>> read_ids(const std::string& path,
                                             int64_t vocab) {
  auto text = read_text_file(path);
  if (!text)
    return std::move(text.error());
  std::vector<int32_t> ids;
  size_t i = 0;
  const auto& s = *text;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (std::isspace(c) || c == ',') {
      ++i;
      continue;
    }
    auto end = i;
    while (end < s.size() && std::isdigit(static_cast<unsigned char>(s[end])))
      ++end;
    auto what = "--ids " + path + ": token " + std::to_string(ids.size())
                + ": ";
    if (end == i || end - i > 9)
      return flag_error(what + "expected an id in [0, "
                        + std::to_string(vocab) + "), got '"
                        + s.substr(i, std::min<size_t>(12, s.size() - i))
                        + "'");
    auto id = std::stoll(s.substr(i, end - i));
    if (id >= vocab)
      return flag_error(what + std::to_string(id)
                        + " is outside the vocabulary of "
                        + std::to_string(vocab) + " tokens");
    ids.push_back(static_cast<int32_t>(id));
    i = end;
  }
  return ids;
}

/// The tokens to replay: --text through the tokenizer, or --ids.
caf::expected<std::vector<int32_t>> input_ids(const cli_args& args,
                                              const std::string& dir,
                                              int64_t vocab) {
  if (args.has("text") == args.has("ids"))
    return flag_error("--text, --ids, --routing-trace: give one of them");
  if (args.has("ids"))
    return read_ids(args.get("ids"), vocab);
  if (!tokenizer::has_tokenizer(dir))
    return flag_error("--text: " + dir + " has no tokenizer.model (use --ids)");
  auto tok = tokenizer::load(dir);
  if (!tok)
    return std::move(tok.error());
  auto text = read_text_file(args.get("text"));
  if (!text)
    return std::move(text.error());
  return (*tok)->encode(*text, true);
}

/// One predictor's counts; summed over layers they count layer-steps, so
/// mean_staged stays per layer and step.
json::value counts_json(const prefetch::prefetch_counts& c) {
  return {{"recall", json::rounded(c.recall(), 4)},
          {"precision", json::rounded(c.precision(), 4)},
          {"mean_staged", json::rounded(c.mean_predicted(), 3)},
          {"predicted", c.predicted},
          {"hits", c.hits},
          {"actual", c.actual}};
}

/// Each predictor's rows: the three of the predictor, then the reference.
std::vector<std::pair<std::string, const std::vector<prefetch::prefetch_counts>*>>
columns(const prefetch::replay_result& r) {
  using prefetch::predictor_kind;
  return {{"ngram", &r.scores.by_predictor[0]},
          {"cross_layer", &r.scores.by_predictor[1]},
          {"combined", &r.scores.by_predictor[2]},
          {"previous", &r.previous}};
}

prefetch::prefetch_counts overall(
  const std::vector<prefetch::prefetch_counts>& per_layer) {
  prefetch::prefetch_counts sum;
  for (const auto& c : per_layer)
    sum += c;
  return sum;
}

/// The expert cache's counts summed over `layers`.
expert_cache_layer cache_sum(const std::vector<expert_cache_layer>& layers) {
  expert_cache_layer sum;
  for (const auto& c : layers)
    sum += c;
  return sum;
}

json::value cache_json(const expert_cache_layer& c) {
  const auto needed = c.hits + c.misses;
  return {{"hits", c.hits},
          {"misses", c.misses},
          {"host_computed", c.host_computed},
          {"host_split", c.host_split},
          {"hit_rate", json::rounded(needed > 0 ? double(c.hits) / needed : 0.0,
                                     4)},
          {"staged_bytes", c.staged_bytes},
          {"loaded_bytes", c.loaded_bytes},
          {"stall_seconds", json::rounded(c.stall_seconds, 6)}};
}

struct run_info {
  std::string model;
  std::string where;
  std::string trace;
  int64_t expert_slots = 0;
  bool learned_eviction = true;
  bool staged = false;
  int64_t window = 0;
  int64_t batch = 0;
  int64_t top_k = 0;
  int64_t experts = 0;
  prefetch::predictor_options options;
};

void print_table(const run_info& info, const prefetch::replay_result& r) {
  const auto layers = static_cast<int64_t>(r.previous.size());
  std::printf("prefetch on %s: %lld tokens in %lld steps (sequences of %lld, "
              "batch %lld), top-%lld of %lld experts, at most %lld staged "
              "per layer\n",
              info.model.c_str(), static_cast<long long>(r.tokens),
              static_cast<long long>(r.steps),
              static_cast<long long>(info.window),
              static_cast<long long>(info.batch),
              static_cast<long long>(info.top_k),
              static_cast<long long>(info.experts),
              static_cast<long long>(info.options.max_staged));
  std::printf("recall / precision / experts staged per step%s\n",
              " (previous: the previous token's experts, for reference)");
  auto cols = columns(r);
  std::printf("%-8s", "layer");
  for (const auto& [name, per_layer] : cols)
    std::printf(" %22s", name.c_str());
  std::printf("\n");
  auto cell = [](const prefetch::prefetch_counts& c) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.3f / %.3f / %.2f", c.recall(),
                  c.precision(), c.mean_predicted());
    return std::string{buf};
  };
  for (int64_t l = 0; l < layers; ++l) {
    std::printf("%-8lld", static_cast<long long>(l));
    for (const auto& [name, per_layer] : cols)
      std::printf(" %22s", cell((*per_layer)[static_cast<size_t>(l)]).c_str());
    std::printf("\n");
  }
  std::printf("%-8s", "overall");
  for (const auto& [name, per_layer] : cols)
    std::printf(" %22s", cell(overall(*per_layer)).c_str());
  std::printf("\npredictor: %.1f us per step, %.1f %% of the step's time\n",
              r.steps > 0 ? 1e6 * r.predictor_seconds / r.steps : 0.0,
              r.step_seconds > 0 ? 100.0 * r.predictor_seconds / r.step_seconds
                                 : 0.0);
  std::printf("speed on %s%s%s: %.3f ms per step, %.1f tokens/s\n",
              info.where.c_str(), info.trace.empty() ? "" : ", routing from ",
              info.trace.c_str(),
              r.steps > 0 ? 1e3 * r.step_seconds / r.steps : 0.0,
              r.step_seconds > 0 ? r.tokens / r.step_seconds : 0.0);
  if (r.expert_cache.empty())
    return;
  auto c = cache_sum(r.expert_cache);
  const auto needed = c.hits + c.misses;
  std::printf("expert cache: %lld slots, %s; hits %lld of %lld (%.1f %%), "
              "%lld misses computed on the host, "
              "%.2f GB staged, %.2f GB loaded on misses, stalls %.3f s "
              "(%.1f %% of the steps)\n",
              static_cast<long long>(info.expert_slots),
              !info.learned_eviction ? "on demand, LRU"
              : info.staged  ? "the predictor stages, learned eviction"
                             : "on demand, learned eviction",
              static_cast<long long>(c.hits), static_cast<long long>(needed),
              needed > 0 ? 100.0 * c.hits / needed : 0.0,
              static_cast<long long>(c.host_computed),
              c.staged_bytes / 1e9, c.loaded_bytes / 1e9, c.stall_seconds,
              r.step_seconds > 0 ? 100.0 * c.stall_seconds / r.step_seconds
                                 : 0.0);
}

void print_json(const run_info& info, const prefetch::replay_result& r) {
  const auto layers = static_cast<int64_t>(r.previous.size());
  json::value predictors = json::value::object();
  for (const auto& [name, per_layer] : columns(r)) {
    auto rows = json::value::array();
    for (int64_t l = 0; l < layers; ++l) {
      auto row = counts_json((*per_layer)[static_cast<size_t>(l)]);
      row["layer"] = l;
      rows.push_back(std::move(row));
    }
    predictors[name] = {{"layers", std::move(rows)},
                        {"overall", counts_json(overall(*per_layer))}};
  }
  json::value out
    = {{"model", info.model},
       {"tokens", r.tokens},
       {"steps", r.steps},
       {"window", info.window},
       {"batch", info.batch},
       {"top_k", info.top_k},
       {"experts", info.experts},
       {"layers", layers},
       {"max_staged", info.options.max_staged},
       {"ngram_order", info.options.ngram_order},
       {"lookahead_tokens", info.options.lookahead_tokens},
       {"min_chance", json::rounded(info.options.min_chance, 4)},
       {"predictor_us_per_step",
        json::rounded(r.steps > 0 ? 1e6 * r.predictor_seconds / r.steps : 0.0,
                      2)},
       {"step_us",
        json::rounded(r.steps > 0 ? 1e6 * r.step_seconds / r.steps : 0.0, 2)},
       {"tokens_per_second",
        json::rounded(r.step_seconds > 0 ? r.tokens / r.step_seconds : 0.0,
                      2)},
       {"device", info.where},
       {"routing_trace", info.trace},
       {"predictors", std::move(predictors)}};
  if (!r.expert_cache.empty()) {
    auto rows = json::value::array();
    for (size_t l = 0; l < r.expert_cache.size(); ++l) {
      auto row = cache_json(r.expert_cache[l]);
      row["layer"] = l;
      rows.push_back(std::move(row));
    }
    out["expert_cache"] = {{"slots", info.expert_slots},
                           {"eviction", info.learned_eviction ? "learned" : "lru"},
                           {"staging", info.staged},
                           {"layers", std::move(rows)},
                           {"overall", cache_json(cache_sum(r.expert_cache))}};
  }
  std::printf("%s\n", json::dump(out).c_str());
}

} // namespace

int run_bench_prefetch(const std::vector<std::string>& raw_args) {
  auto args = cli_args::parse(raw_args, prefetch_flags);
  if (!args)
    return report_error(args.error());
  if (args->has("help") || !args->has("model")) {
    std::printf("usage: volt-node bench prefetch --model DIR (--text FILE | "
                "--ids FILE | --routing-trace FILE) [flags]\n%s",
                render_flags(prefetch_flags).c_str());
    return args->has("help") ? 0 : exit_bad_input;
  }
  auto ckpt = checkpoint::open(args->get("model"));
  if (!ckpt)
    return report_error(ckpt.error());
  const auto& mc = ckpt->config();
  auto window = args->get_int("window",
                              std::min<int64_t>(512, mc.max_position_embeddings),
                              1, mc.max_position_embeddings);
  auto batch = args->get_int("batch", 1, 1, 4096);
  auto order = args->get_int("ngram-order", 3, 1, 16);
  auto lookahead = args->get_int("lookahead-tokens", 1, 1, 64);
  auto max_staged = args->get_int("max-staged", 0, 0, mc.num_local_experts);
  auto min_chance = args->get_int("min-chance-percent", 10, 0, 100);
  auto limit = args->get_int("tokens", std::numeric_limits<int32_t>::max(), 1,
                              std::numeric_limits<int32_t>::max());
  auto expert_slots = args->get_int("expert-slots", 0, 0, 1 << 20);
  for (const auto* x : {&window, &batch, &order, &lookahead, &max_staged,
                        &min_chance, &limit, &expert_slots})
    if (!*x)
      return report_error(x->error());
  auto device = args->get_device("device", "cpu");
  if (!device)
    return report_error(device.error());
  auto quantization = args->get_quantization("quantization");
  if (!quantization)
    return report_error(quantization.error());
  auto misses = args->get_expert_misses("expert-misses");
  if (!misses)
    return report_error(misses.error());
  if (*expert_slots > 0 && *device < 0)
    return report_error(flag_error("--expert-slots: needs a CUDA device "
                                   "(--device cuda:N)"));
  std::optional<prefetch::routing_trace> trace;
  caf::expected<std::vector<int32_t>> ids{std::vector<int32_t>{}};
  if (args->has("routing-trace")) {
    if (args->has("text") || args->has("ids"))
      return report_error(flag_error("--text, --ids, --routing-trace: give "
                                     "one of them"));
    auto path = args->get("routing-trace");
    auto loaded = prefetch::load_routing_trace(path);
    if (!loaded)
      return report_error(loaded.error());
    if (auto err = prefetch::check_trace_fits(*loaded, mc, path))
      return report_error(err);
    trace = std::move(*loaded);
    ids = trace->tokens;
  } else {
    ids = input_ids(*args, args->get("model"), mc.vocab_size);
  }
  if (!ids)
    return report_error(ids.error());
  if (ids->empty())
    return report_error(flag_error(
      std::string{args->has("text")  ? "--text " + args->get("text")
                  : args->has("ids") ? "--ids " + args->get("ids")
                                     : "--routing-trace "
                                         + args->get("routing-trace")}
      + ": no tokens"));
  if (static_cast<int64_t>(ids->size()) > *limit)
    ids->resize(static_cast<size_t>(*limit));
  prefetch::replay_options ro;
  ro.window = *window;
  ro.batch = *batch;
  ro.trace = trace ? &*trace : nullptr;
  ro.watch_layers = !args->has("lru");
  ro.record = args->has("record-routing");
  standalone_options so;
  so.model_device = *device;
  so.model_device_origin = "--device";
  so.experts.quantization = *quantization;
  so.experts.slots = *expert_slots;
  so.experts.slots_origin = "--expert-slots";
  so.stage_predicted = args->has("stage");
  so.experts.misses = *misses;
  so.engine.batching.max_batch = static_cast<size_t>(ro.batch);
  so.engine.page_size = 16;
  so.engine.num_pages = prefetch::replay_pages(ro, so.engine.page_size);
  so.kv_pool_origin = "--window " + std::to_string(ro.window) + " x --batch "
                      + std::to_string(ro.batch);
  auto exec = make_executor(*ckpt, so, true);
  if (!exec)
    return report_error(exec.error());
  run_info info;
  info.model = args->get("model");
  info.where = (*exec)->where();
  info.trace = trace ? args->get("routing-trace") : std::string{};
  info.expert_slots = *expert_slots;
  info.learned_eviction = ro.watch_layers;
  info.staged = so.stage_predicted;
  info.window = ro.window;
  info.batch = ro.batch;
  info.top_k = mc.num_experts_per_tok;
  info.experts = mc.num_local_experts;
  info.options.ngram_order = *order;
  info.options.lookahead_tokens = *lookahead;
  info.options.max_staged = *max_staged;
  info.options.min_chance = static_cast<float>(*min_chance) / 100.0f;
  prefetch::expert_predictor predictor{mc, info.options};
  info.options = predictor.options();
  auto r = prefetch::replay(**exec, predictor, *ids, ro);
  if (!r)
    return report_error(r.error());
  if (ro.record) {
    prefetch::routing_trace recorded;
    recorded.model = info.model;
    recorded.layers = mc.num_hidden_layers;
    recorded.experts = mc.num_local_experts;
    recorded.top_k = mc.num_experts_per_tok;
    recorded.tokens = *ids;
    recorded.routing = std::move(r->routing);
    if (auto err = prefetch::save_routing_trace(recorded,
                                                args->get("record-routing")))
      return report_error(err);
  }
  if (args->has("json"))
    print_json(info, *r);
  else
    print_table(info, *r);
  return 0;
}

} // namespace volt
