// `volt-node shell HOST:PORT`: an operator's view of a running router or
// standalone node, interactive (line editing and history) or one command at
// a time for scripts (--command).

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "apps/cli_args.hpp"
#include "apps/commands.hpp"
#include "apps/line_editor.hpp"
#include "apps/link_security.hpp"
#include "apps/shell_session.hpp"
#include "base/error.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "net/actor_system_setup.hpp"

namespace volt {

namespace {

const std::vector<flag_spec> shell_flags = with_flags({
  {"command", true,
   "run one command (e.g. \"experts\"), print its output and exit: 0 on "
   "success, 2 with a one-line error"},
  {"wait-seconds", true,
   "how long to wait for the node to be reachable (default 10)"},
  {"log-level", true, "error, warning (default), info or debug"},
  {"help", false, "show this help"},
}, client_tls_flags());

/// Every error of the shell exits with this code, whatever its kind.
constexpr int exit_shell_error = 2;

int fail(const caf::error& err) {
  std::fprintf(stderr, "volt-node: %s\n", describe(err).c_str());
  return exit_shell_error;
}

void print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void print_usage() {
  std::string commands;
  for (const auto& c : shell_commands())
    commands += "  " + c.usage + "\n";
  std::printf("usage: volt-node shell HOST:PORT [--command CMD] [flags]\n"
              "  HOST:PORT is a router's or standalone node's [network] "
              "port.\n%scommands:\n%s"
              "history: $XDG_STATE_HOME/volt_shell_history, else "
              "~/.volt_shell_history\n",
              render_flags(shell_flags).c_str(), commands.c_str());
}

/// Reads commands until quit or end of input. A terminal gets a prompt,
/// line editing and history; piped input is read line by line, silently.
int interact(shell_session& session) {
  bool terminal = isatty(STDIN_FILENO) != 0;
  std::unique_ptr<line_editor> editor;
  if (terminal) {
    editor = std::make_unique<line_editor>(shell_history_path());
    print("connected to " + session.address()
          + "; 'help' lists the commands, 'quit' leaves\n");
  }
  while (!session.done()) {
    std::optional<std::string> line;
    if (editor) {
      line = editor->read("volt> ");
    } else if (std::string text; std::getline(std::cin, text)) {
      line = std::move(text);
    }
    if (!line)
      break;
    auto out = session.run(*line);
    if (out)
      print(*out);
    else
      std::fprintf(stderr, "error: %s\n", describe(out.error()).c_str());
  }
  return 0;
}

} // namespace

int run_shell_command(const std::vector<std::string>& raw_args) {
  // The node's address comes first, as in `volt-node shell HOST:PORT`.
  std::string node;
  std::vector<std::string> flags = raw_args;
  if (!flags.empty() && flags[0].rfind("--", 0) != 0) {
    node = flags[0];
    flags.erase(flags.begin());
  }
  auto args = cli_args::parse(flags, shell_flags);
  if (!args)
    return fail(args.error());
  if (args->has("help")) {
    print_usage();
    return 0;
  }
  if (auto err = apply_log_level(*args, log_level::warning))
    return fail(err);
  if (node.empty())
    return fail(make_volt_error(volt_errc::invalid_config,
                                "shell: missing HOST:PORT of a router or "
                                "standalone node (try --help)"));
  auto where = parse_endpoint(node);
  if (!where)
    return fail(make_volt_error(volt_errc::invalid_config,
                                "shell: expected HOST:PORT, got '" + node
                                  + "'"));
  auto wait = args->get_int("wait-seconds", 10, 0, 86400);
  if (!wait)
    return fail(wait.error());
  auto tls = client_link_tls(*args, process_environment());
  if (!tls)
    return fail(tls.error());
  caf::actor_system_config cfg;
  // A peer of the node: it must beat (a router drops peers that stay silent
  // for its peer_timeout_ms) and give up on a node that stays silent.
  configure_actor_system(cfg, std::chrono::seconds{30},
                         *tls ? &**tls : nullptr);
  caf::actor_system sys{cfg};
  shell_session session{sys, *where, std::chrono::seconds{*wait}};
  if (auto err = session.connect())
    return fail(err);
  if (!args->has("command"))
    return interact(session);
  auto out = session.run(args->get("command"));
  if (!out)
    return fail(out.error());
  print(*out);
  return 0;
}

} // namespace volt
