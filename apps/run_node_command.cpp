// `volt-node --config FILE.toml`: validates the configuration and the
// checkpoint, spawns the node's actors, publishes them on [network] host:port
// and serves until SIGINT or SIGTERM.

#include <csignal>
#include <cstdio>

#include "actors/standalone.hpp"
#include "apps/cli_args.hpp"
#include "apps/commands.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/io/middleman.hpp"
#include "config/node_config.hpp"
#include "model/checkpoint.hpp"
#include "net/actor_system_setup.hpp"

namespace volt {

namespace {

const std::vector<flag_spec> node_flags = {
  {"config", true,
   "node configuration (TOML); VOLT_<SECTION>_<KEY> variables override it"},
  {"log-level", true, "debug, info (default), warning, error or quiet"},
  {"help", false, "print this help"},
};

/// Blocks SIGINT and SIGTERM in this thread and every thread started later
/// (CAF's), so that `wait_for_shutdown_signal` receives them synchronously
/// instead of a handler.
sigset_t block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int wait_for_shutdown_signal(const sigset_t& set) {
  int signal_number = 0;
  sigwait(&set, &signal_number);
  return signal_number;
}

/// A node's published root actor and the port it listens on.
struct served_node {
  caf::strong_actor_ptr root;
  uint16_t port = 0;
};

/// Publishes `handle` with its typed interface (remote_actor callers must match
/// it exactly).
template <class Handle>
caf::expected<served_node>
publish(caf::actor_system& sys, const node_config& cfg, Handle handle) {
  auto port = sys.middleman().publish(handle, cfg.network.port,
                                      cfg.network.host.c_str(), true);
  if (!port)
    return make_volt_error(volt_errc::invalid_config,
                           cfg.source + ": [network] port: cannot listen on "
                             + cfg.network.host + ":"
                             + std::to_string(cfg.network.port) + ": "
                             + describe(port.error()));
  return served_node{caf::actor_cast<caf::strong_actor_ptr>(handle), *port};
}

/// Spawns and publishes the actors of `cfg`'s role.
caf::expected<served_node> serve_role(caf::actor_system& sys,
                                      const node_config& cfg,
                                      const checkpoint& ckpt) {
  switch (cfg.node.role) {
    case node_role::standalone: {
      auto engine_handle = spawn_standalone(sys, ckpt, standalone_options{});
      if (!engine_handle)
        return std::move(engine_handle.error());
      return publish(sys, cfg, *engine_handle);
    }
    case node_role::router:
    case node_role::worker: break;
  }
  return make_volt_error(
    volt_errc::invalid_config,
    cfg.source + ": [node] role: '" + to_string(cfg.node.role)
      + "' nodes are not available in this build yet; use 'standalone'");
}

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
  auto ckpt = checkpoint::open(cfg->model.path);
  if (!ckpt)
    return report_error(ckpt.error());
  if (auto err = check_against_model(
        *cfg, static_cast<uint32_t>(ckpt->config().num_local_experts),
        cfg->model.path + "/config.json"))
    return report_error(err);
  auto signals = block_shutdown_signals();
  caf::actor_system_config sys_cfg;
  configure_actor_system(sys_cfg);
  caf::actor_system sys{sys_cfg};
  auto served = serve_role(sys, *cfg, *ckpt);
  if (!served)
    return report_error(served.error());
  VOLT_INFO("node", "ready: " << to_string(cfg->node.role) << " node '"
                              << cfg->node.id << "' serving on "
                              << cfg->network.host << ":" << served->port);
  auto sig = wait_for_shutdown_signal(signals);
  VOLT_INFO("node", "received " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
                                << ", shutting down");
  anon_send_exit(served->root, caf::exit_reason::user_shutdown);
  return 0;
}

} // namespace volt
