// `volt-node generate`: loads a checkpoint, spawns a standalone node in this
// process, runs one generation and prints it.

#include <cstdio>
#include <limits>

#include "actors/standalone.hpp"
#include "apps/cli_args.hpp"
#include "apps/commands.hpp"
#include "apps/generation_output.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/scoped_actor.hpp"
#include "net/actor_system_setup.hpp"

namespace volt {

namespace {

const std::vector<flag_spec> generate_flags = {
  {"model", true, "checkpoint folder (config.json + *.safetensors)"},
  {"prompt-ids", true, "prompt as comma-separated token ids, e.g. 1,2,3"},
  {"max-new-tokens", true, "tokens to generate at most (default 16)"},
  {"json", false, "print one JSON object instead of text"},
  {"all-logits", false, "with --json: add the logits at every prompt position"},
  {"router-topk", false,
   "with --json: add the experts chosen per layer and prompt token"},
  {"ignore-eos", false, "keep generating past the end-of-sequence token"},
  {"expert-actors", true,
   "expert actors to split the experts over (default: one per core)"},
  {"log-level", true, "debug, info, warning (default), error or quiet"},
  {"help", false, "print this help"},
};

} // namespace

int run_generate_command(const std::vector<std::string>& raw_args) {
  auto args = cli_args::parse(raw_args, generate_flags);
  if (!args)
    return report_error(args.error());
  if (args->has("help")) {
    std::printf(
      "usage: volt-node generate --model DIR --prompt-ids 1,2,3 [flags]\n%s",
      render_flags(generate_flags).c_str());
    return 0;
  }
  if (auto err = apply_log_level(*args, log_level::warning))
    return report_error(err);
  if (!args->has("model"))
    return report_error(
      make_volt_error(volt_errc::invalid_config, "--model: missing"));
  if (!args->has("prompt-ids"))
    return report_error(
      make_volt_error(volt_errc::invalid_config, "--prompt-ids: missing"));
  auto ids = args->get_int_list("prompt-ids",
                                std::numeric_limits<int32_t>::min(),
                                std::numeric_limits<int32_t>::max());
  if (!ids)
    return report_error(ids.error());
  auto max_new = args->get_int("max-new-tokens", 16, 0,
                               std::numeric_limits<int32_t>::max());
  if (!max_new)
    return report_error(max_new.error());
  auto expert_actors = args->get_int("expert-actors", 0, 0, 4096);
  if (!expert_actors)
    return report_error(expert_actors.error());
  auto ckpt = checkpoint::open(args->get("model"));
  if (!ckpt)
    return report_error(ckpt.error());
  generate_request req;
  req.prompt.assign(ids->begin(), ids->end());
  req.max_new_tokens = static_cast<uint32_t>(*max_new);
  req.ignore_eos = args->has("ignore-eos");
  req.return_all_logits = args->has("all-logits");
  req.return_routing = args->has("router-topk");
  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  caf::actor_system sys{cfg};
  standalone_options options;
  options.expert_actors = static_cast<size_t>(*expert_actors);
  auto engine_handle = spawn_standalone(sys, *ckpt, options);
  if (!engine_handle)
    return report_error(engine_handle.error());
  int exit_code = 0;
  caf::scoped_actor self{sys};
  self->request(*engine_handle, caf::infinite, generate_atom_v, req)
    .receive(
      [&](const generate_result& res) {
        auto text = args->has("json") ? generation_to_json(req, res) + "\n"
                                      : generation_to_text(req, res);
        std::fwrite(text.data(), 1, text.size(), stdout);
      },
      [&](caf::error& err) { exit_code = report_error(err); });
  self->send_exit(*engine_handle, caf::exit_reason::user_shutdown);
  return exit_code;
}

} // namespace volt
