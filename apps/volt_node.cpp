// volt-node: the one binary of Volt. `volt-node --config FILE.toml` runs a node
// in the role its configuration names; `volt-node generate ...` runs one
// generation in-process.

#include <cstdio>
#include <string>
#include <vector>

#include "apps/commands.hpp"
#include "base/error.hpp"

namespace volt {

int report_error(const caf::error& err) {
  std::fprintf(stderr, "volt-node: %s\n", describe(err).c_str());
  bool bad_input = err == volt_errc::invalid_config
                   || err == volt_errc::invalid_checkpoint
                   || err == volt_errc::invalid_request;
  return bad_input ? exit_bad_input : 1;
}

} // namespace volt

namespace {

void print_usage() {
  std::printf(
    "usage:\n"
    "  volt-node --config FILE.toml        run a node (role from [node] role)\n"
    "  volt-node generate --model DIR (--prompt-ids 1,2,3 | --prompt TEXT | "
    "--chat MESSAGE) [--max-new-tokens N] [--json]\n"
    "  volt-node bench moe-layer [--device cuda:0|cpu] [--dtype bf16|int8] "
    "[--json]\n"
    "  volt-node bench model --model DIR [--device cuda:0|cpu] [--json]\n"
    "  volt-node shell HOST:PORT [--command CMD]  inspect a running node "
    "(nodes, experts, queue, requests, kv, metrics, spawn, drain)\n"
    "  volt-node SUBCOMMAND --help         flags of a subcommand\n");
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h"
      || args[0] == "help") {
    print_usage();
    return args.empty() ? volt::exit_bad_input : 0;
  }
  auto command = args[0];
  if (command == "generate")
    return volt::run_generate_command({args.begin() + 1, args.end()});
  if (command == "bench")
    return volt::run_bench_command({args.begin() + 1, args.end()});
  if (command == "shell")
    return volt::run_shell_command({args.begin() + 1, args.end()});
  if (command.rfind("--", 0) == 0)
    return volt::run_node_command(args);
  std::fprintf(stderr, "volt-node: unknown subcommand '%s' (try --help)\n",
               command.c_str());
  return volt::exit_bad_input;
}
