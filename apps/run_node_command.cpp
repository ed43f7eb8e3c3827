// `volt-node --config FILE.toml`: validates the configuration and the
// checkpoint, spawns the node's actors, publishes them on [network] host:port
// and serves until SIGINT or SIGTERM.

#include <cstdio>

#include "apps/cli_args.hpp"
#include "apps/commands.hpp"
#include "apps/link_security.hpp"
#include "apps/node_roles.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "config/node_config.hpp"
#include "model/checkpoint.hpp"

namespace volt {

namespace {

const std::vector<flag_spec> node_flags = {
  {"config", true,
   "node configuration (TOML); VOLT_<SECTION>_<KEY> variables override it"},
  {"log-level", true,
   "debug, info (default), warning, error or quiet; without it, "
   "VOLT_LOG_LEVEL"},
  {"help", false, "print this help"},
};

} // namespace

int run_node_command(const std::vector<std::string>& raw_args) {
  auto args = cli_args::parse(raw_args, node_flags);
  if (!args)
    return report_error(args.error());
  if (args->has("help") || !args->has("config")) {
    std::printf("usage: volt-node --config FILE.toml [flags]\n%s",
                render_flags(node_flags).c_str());
    return args->has("help") ? 0 : exit_bad_input;
  }
  if (auto err = apply_log_level(*args, log_level::info))
    return report_error(err);
  auto cfg = load_node_config(args->get("config"), process_environment());
  if (!cfg)
    return report_error(cfg.error());
  // Before the checkpoint: a bad TLS file is quicker to tell than a model to
  // read.
  auto tls = node_link_tls(*cfg);
  if (!tls)
    return report_error(tls.error());
  auto ckpt = checkpoint::open(cfg->model.path);
  if (!ckpt)
    return report_error(ckpt.error());
  if (auto err = check_against_model(
        *cfg, static_cast<uint32_t>(ckpt->config().num_local_experts),
        cfg->model.path + "/config.json"))
    return report_error(err);
  return run_node(*cfg, *ckpt, *tls ? &**tls : nullptr);
}

} // namespace volt
