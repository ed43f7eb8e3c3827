// `volt-node bench prefetch`: runs a model (CPU executor) over a text or a
// list of token ids one token per sequence per step, as decoding does, and
// reports per layer and overall the recall and precision of the experts
// each prefetch predictor would stage against those the router then chose,
// and how many it staged per layer.

#include <cctype>
#include <cstdio>
#include <limits>
#include <string>

#include "actors/standalone.hpp"
#include "apps/cli_args.hpp"
#include "apps/commands.hpp"
#include "base/error.hpp"
#include "gpu/cpu/parallel.hpp"
#include "model/file_io.hpp"
#include "model/json.hpp"
#include "prefetch/replay.hpp"
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
    return flag_error("--text, --ids: give one of them");
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

struct run_info {
  std::string model;
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
       {"predictors", std::move(predictors)}};
  std::printf("%s\n", json::dump(out).c_str());
}

} // namespace

int run_bench_prefetch(const std::vector<std::string>& raw_args) {
  auto args = cli_args::parse(raw_args, prefetch_flags);
  if (!args)
    return report_error(args.error());
  if (args->has("help") || !args->has("model")) {
    std::printf("usage: volt-node bench prefetch --model DIR (--text FILE | "
                "--ids FILE) [flags]\n%s",
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
  for (const auto* x : {&window, &batch, &order, &lookahead, &max_staged,
                        &min_chance, &limit})
    if (!*x)
      return report_error(x->error());
  auto ids = input_ids(*args, args->get("model"), mc.vocab_size);
  if (!ids)
    return report_error(ids.error());
  if (ids->empty())
    return report_error(flag_error(
      std::string{args->has("text") ? "--text " + args->get("text")
                                     : "--ids " + args->get("ids")}
      + ": no tokens"));
  if (static_cast<int64_t>(ids->size()) > *limit)
    ids->resize(static_cast<size_t>(*limit));
  prefetch::replay_options ro;
  ro.window = *window;
  ro.batch = *batch;
  standalone_options so;
  so.engine.page_size = 16;
  so.engine.num_pages = prefetch::replay_pages(ro, so.engine.page_size);
  so.kv_pool_origin = "--window " + std::to_string(ro.window) + " x --batch "
                      + std::to_string(ro.batch);
  auto exec = make_executor(*ckpt, so, true);
  if (!exec)
    return report_error(exec.error());
  run_info info;
  info.model = args->get("model");
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
  if (args->has("json"))
    print_json(info, *r);
  else
    print_table(info, *r);
  return 0;
}

} // namespace volt
