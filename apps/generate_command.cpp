// `volt-node generate`: one generation, either on a standalone node spawned in
// this process (--model) or on a running router or standalone node reached
// through CAF (--connect), printed for a person or as JSON; with --stream,
// tokens are printed as the engine makes them.

#include <algorithm>
#include <cstdio>
#include <limits>

#include "actors/standalone.hpp"
#include "apps/cli_args.hpp"
#include "apps/commands.hpp"
#include "apps/generation_output.hpp"
#include "apps/link_security.hpp"
#include "apps/remote_client.hpp"
#include "apps/stream_output.hpp"
#include "apps/text_prompt.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/send.hpp"
#include "config/endpoint.hpp"
#include "net/actor_system_setup.hpp"

namespace volt {

namespace {

const std::vector<flag_spec> generate_flags = {
  {"model", true, "checkpoint folder (config.json + *.safetensors)"},
  {"connect", true, "HOST:PORT of a running router or standalone node"},
  {"wait-seconds", true,
   "with --connect: how long to wait for the node to be reachable and ready "
   "(default 30)"},
  {"prompt-ids", true, "prompt as comma-separated token ids, e.g. 1,2,3"},
  {"prompt", true,
   "prompt as text, tokenised by the checkpoint's tokenizer; the answer is "
   "printed as text too (--json adds \"text\")"},
  {"chat", true,
   "one user message, rendered with the checkpoint's chat template; the "
   "reply is printed as text"},
  {"chat-template", true,
   "with --chat: mistral or chatml (default: recognised in the checkpoint)"},
  {"tokenizer", true,
   "with --connect and --prompt or --chat: the checkpoint folder whose "
   "tokenizer to use"},
  {"max-new-tokens", true, "tokens to generate at most (default 16)"},
  {"json", false, "print one JSON object instead of text"},
  {"all-logits", false, "with --json: add the logits at every prompt position"},
  {"router-topk", false,
   "with --json: add the experts chosen per layer and prompt token"},
  {"ignore-eos", false, "keep generating past the end-of-sequence token"},
  {"temperature", true, "sampling temperature; 0 is greedy (default 0)"},
  {"top-p", true, "nucleus sampling threshold in (0, 1] (default 1)"},
  {"seed", true, "seed of the sampler: same seed, same tokens (default 0)"},
  {"n", true,
   "sequences to sample from the prompt, sharing its KV pages (default 1); "
   "--json then adds \"sequences\""},
  {"stop-token-ids", true,
   "comma-separated token ids that end a sequence as EOS does"},
  {"stream", false,
   "print each token as the engine makes it, one line per token, then the "
   "summary; not with --json"},
  {"logprobs", true,
   "with --stream: print each token's log-probability and the N most likely "
   "tokens, N in [0, 20] (default 0)"},
  {"device", true,
   "with --model: where the model runs, cpu or cuda:N (default cpu)"},
  {"quantization", true,
   "with --model on a GPU: expert weights none (bf16) or int8 (default none)"},
  {"mask-experts", true,
   "with --model: comma-separated expert ids left out of routing in every "
   "layer, as a router does with experts that have no live host (the "
   "reference of degraded answers)"},
  {"log-level", true,
   "debug, info, warning (default), error or quiet; without it, "
   "VOLT_LOG_LEVEL"},
  {"help", false, "print this help"},
};

/// With the flags of a client's TLS files.
const std::vector<flag_spec> all_generate_flags
  = with_flags(generate_flags, client_tls_flags());

caf::error flag_error(std::string what) {
  return make_volt_error(volt_errc::invalid_config, std::move(what));
}

/// Builds the request from the flags; the prompt is `text`'s ids when the
/// prompt came as text.
caf::expected<generate_request>
request_from(const cli_args& args, const std::optional<text_prompt>& text) {
  std::vector<int64_t> ids;
  if (text) {
    ids.assign(text->ids.begin(), text->ids.end());
  } else {
    auto listed = args.get_int_list("prompt-ids",
                                    std::numeric_limits<int32_t>::min(),
                                    std::numeric_limits<int32_t>::max());
    if (!listed)
      return std::move(listed.error());
    ids = std::move(*listed);
  }
  auto max_new = args.get_int("max-new-tokens", 16, 0,
                              std::numeric_limits<int32_t>::max());
  if (!max_new)
    return std::move(max_new.error());
  generate_request req;
  req.prompt.assign(ids.begin(), ids.end());
  req.max_new_tokens = static_cast<uint32_t>(*max_new);
  req.ignore_eos = args.has("ignore-eos");
  req.return_all_logits = args.has("all-logits");
  req.return_routing = args.has("router-topk");
  // The engine checks them again (check_sampling): requests also come from
  // other clients.
  auto temperature = args.get_double("temperature", 0.0, 0.0, 100.0);
  auto top_p = args.get_double("top-p", 1.0, 0.0, 1.0);
  auto seed = args.get_int("seed", 0, 0, std::numeric_limits<int64_t>::max());
  if (!temperature)
    return std::move(temperature.error());
  if (!top_p)
    return std::move(top_p.error());
  if (!seed)
    return std::move(seed.error());
  auto n = args.get_int("n", 1, 1, max_sequences_per_request);
  if (!n)
    return std::move(n.error());
  req.n = static_cast<uint32_t>(*n);
  if (args.has("stop-token-ids")) {
    auto stops = args.get_int_list("stop-token-ids",
                                   std::numeric_limits<int32_t>::min(),
                                   std::numeric_limits<int32_t>::max());
    if (!stops)
      return std::move(stops.error());
    req.stop_token_ids.assign(stops->begin(), stops->end());
  }
  if (args.has("logprobs") && !args.has("stream"))
    return flag_error("--logprobs: needs --stream (the summary does not show "
                      "log-probabilities)");
  auto logprobs = args.get_int("logprobs", 0, 0, max_logprobs);
  if (!logprobs)
    return std::move(logprobs.error());
  req.logprobs = static_cast<int32_t>(*logprobs);
  req.temperature = static_cast<float>(*temperature);
  req.top_p = static_cast<float>(*top_p);
  req.seed = static_cast<uint64_t>(*seed);
  return req;
}

/// The answers' text for a person: the text alone for one sequence, each
/// under a header for several.
std::string texts_to_text(const std::vector<std::string>& texts) {
  if (texts.size() == 1)
    return texts[0] + "\n\n";
  std::string out;
  for (size_t i = 0; i < texts.size(); ++i)
    out += "--- sequence " + std::to_string(i) + "\n" + texts[i] + "\n";
  return out.empty() ? out : out + "\n";
}

/// Prints each streamed chunk at once: a person (or a test) sees tokens
/// while the engine makes them.
void print_chunk(const generate_chunk& c) {
  auto text = chunk_to_text(c);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

/// The experts --mask-experts names, checked against the model.
caf::expected<std::vector<uint32_t>> masked_experts(const cli_args& args,
                                                    const model_config& cfg) {
  if (!args.has("mask-experts"))
    return std::vector<uint32_t>{};
  auto ids = args.get_int_list("mask-experts", 0,
                               std::numeric_limits<uint32_t>::max());
  if (!ids)
    return std::move(ids.error());
  std::vector<uint32_t> out;
  for (auto id : *ids) {
    if (id >= cfg.num_local_experts)
      return flag_error("--mask-experts: expert " + std::to_string(id)
                        + " is outside the model ("
                        + std::to_string(cfg.num_local_experts)
                        + " experts)");
    if (std::find(out.begin(), out.end(), id) != out.end())
      return flag_error("--mask-experts: expert " + std::to_string(id)
                        + " is listed twice");
    out.push_back(static_cast<uint32_t>(id));
  }
  if (static_cast<int64_t>(out.size()) >= cfg.num_local_experts)
    return flag_error("--mask-experts: every expert of the model is masked; "
                      "leave at least one to route to");
  return out;
}

/// Runs the request on a standalone node spawned in this process.
caf::expected<generate_result> generate_local(caf::actor_system& sys,
                                              const cli_args& args,
                                              const generate_request& req,
                                              chunk_handler on_chunk) {
  auto device = args.get_device("device", "cpu");
  if (!device)
    return std::move(device.error());
  auto quantization = args.get_quantization("quantization");
  if (!quantization)
    return std::move(quantization.error());
  auto ckpt = checkpoint::open(args.get("model"));
  if (!ckpt)
    return std::move(ckpt.error());
  auto masked = masked_experts(args, ckpt->config());
  if (!masked)
    return std::move(masked.error());
  standalone_options options;
  options.engine.masked_experts = std::move(*masked);
  options.model_device = *device;
  options.model_device_origin = "--device";
  options.experts.quantization = *quantization;
  auto engine_handle = spawn_standalone(sys, *ckpt, options);
  if (!engine_handle)
    return std::move(engine_handle.error());
  // Every expert is local: the engine is ready at once.
  auto result
    = generate_on(sys, *engine_handle, "this process", req,
                  std::chrono::steady_clock::now() + std::chrono::seconds{30},
                  std::move(on_chunk));
  caf::anon_send_exit(*engine_handle, caf::exit_reason::user_shutdown);
  return result;
}

} // namespace

int run_generate_command(const std::vector<std::string>& raw_args) {
  auto args = cli_args::parse(raw_args, all_generate_flags);
  if (!args)
    return report_error(args.error());
  if (args->has("help")) {
    std::printf("usage: volt-node generate (--model DIR | --connect HOST:PORT) "
                "(--prompt-ids 1,2,3 | --prompt TEXT | --chat MESSAGE) "
                "[flags]\n%s",
                render_flags(all_generate_flags).c_str());
    return 0;
  }
  if (auto err = apply_log_level(*args, log_level::warning))
    return report_error(err);
  if (args->has("model") == args->has("connect"))
    return report_error(flag_error(
      args->has("model") ? "--model and --connect: give one, not both"
                         : "--model: missing (or --connect HOST:PORT)"));
  if (args->has("mask-experts") && !args->has("model"))
    return report_error(flag_error(
      "--mask-experts: needs --model (a running node routes around the "
      "experts that have no live host by itself)"));
  if (args->has("stream") && args->has("json"))
    return report_error(flag_error("--stream and --json: give one, not both"));
  // The text output has no place for them: asking without --json would
  // compute them and show nothing.
  if (args->has("all-logits") && !args->has("json"))
    return report_error(flag_error(
      "--all-logits: needs --json (only the JSON output has the logits)"));
  if (args->has("router-topk") && !args->has("json"))
    return report_error(flag_error(
      "--router-topk: needs --json (only the JSON output has the experts)"));
  auto text = text_prompt_from(*args);
  if (!text)
    return report_error(text.error());
  auto req = request_from(*args, *text);
  if (!req)
    return report_error(req.error());
  chunk_handler on_chunk;
  if (args->has("stream"))
    on_chunk = print_chunk;
  // The environment's TLS files are ambient and only used with --connect;
  // the flags are asked for, and do nothing without it.
  for (const auto& flag : client_tls_flags())
    if (args->has(flag.name) && !args->has("connect"))
      return report_error(flag_error("--" + flag.name
                                     + ": only with --connect (a node in "
                                       "this process has no links)"));
  std::optional<tls_files> tls;
  if (args->has("connect")) {
    auto loaded = client_link_tls(*args, process_environment());
    if (!loaded)
      return report_error(loaded.error());
    tls = std::move(*loaded);
  }
  caf::actor_system_config cfg;
  // With --connect this process is a peer of the node: it must beat (a
  // router drops peers that stay silent for its peer_timeout_ms) and give up
  // on a node that stays silent for long.
  configure_actor_system(cfg, std::chrono::seconds{30}, tls ? &*tls : nullptr);
  caf::actor_system sys{cfg};
  caf::expected<generate_result> res{caf::error{}};
  if (args->has("connect")) {
    auto where = parse_endpoint(args->get("connect"));
    if (!where)
      return report_error(flag_error("--connect: expected HOST:PORT, got '"
                                     + args->get("connect") + "'"));
    auto wait = args->get_int("wait-seconds", 30, 0, 86400);
    if (!wait)
      return report_error(wait.error());
    res = generate_remote(sys, *where, *req, std::chrono::seconds{*wait},
                          on_chunk);
  } else {
    res = generate_local(sys, *args, *req, on_chunk);
  }
  if (!res)
    return report_error(res.error());
  std::vector<std::string> texts;
  if (*text) {
    if (res->sequences.empty())
      texts.push_back((*text)->decode(res->new_tokens));
    for (const auto& seq : res->sequences)
      texts.push_back((*text)->decode(seq));
  }
  auto out = args->has("json") ? generation_to_json(*req, *res, texts) + "\n"
                               : texts_to_text(texts)
                                   + generation_to_text(*req, *res);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

} // namespace volt
