#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "actors/type_ids.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"
#include "config/endpoint.hpp"

namespace volt {

/// One command of `volt-node shell`.
struct shell_command_spec {
  std::string name;
  std::string usage;
  std::string help; // one line
};

/// Every command, in the order `help` lists them.
const std::vector<shell_command_spec>& shell_commands();

/// A shell's connection to one router or standalone node: runs command
/// lines against its engine (inspect_atom, place_atom, drain_atom) and
/// reconnects when the node went away and is back.
class shell_session {
public:
  shell_session(caf::actor_system& sys, endpoint where,
                std::chrono::milliseconds wait);

  /// Connects, retrying until the node is up or `wait` passes.
  caf::error connect();

  /// Runs one command line and returns what it prints (empty for a blank
  /// line), or the error to show as one line: a usage error, an unknown
  /// command (with the nearest one), or the node's answer.
  caf::expected<std::string> run(const std::string& line);

  /// `quit` (or `exit`) ran.
  bool done() const {
    return done_;
  }

  /// "host:port" of the node.
  const std::string& address() const {
    return address_;
  }

private:
  template <class Reply, class... Ts>
  caf::expected<Reply> ask(std::chrono::milliseconds timeout, Ts... xs);

  caf::expected<std::string> spawn(const std::vector<std::string>& words);
  caf::expected<std::string> drain(const std::vector<std::string>& words);

  caf::actor_system& sys_;
  endpoint where_;
  std::string address_;
  std::chrono::milliseconds wait_;
  engine_actor engine_;
  bool done_ = false;
};

/// Reads "4,5", "0-3" and "0-3,6" (also split by spaces) as expert ids;
/// errors name the text at fault.
caf::expected<std::vector<uint32_t>>
parse_expert_list(const std::vector<std::string>& words);

} // namespace volt
