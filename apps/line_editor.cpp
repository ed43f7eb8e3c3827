#include "apps/line_editor.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

// libedit's readline-compatible interface; its pkg-config flags put
// /usr/include/editline on the include path.
#include <readline.h>

namespace volt {

namespace {

/// Lines kept in the history file.
constexpr int history_lines = 1000;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string{} : std::string{value};
}

} // namespace

std::string shell_history_path() {
  if (auto state = env("XDG_STATE_HOME"); !state.empty())
    return state + "/volt_shell_history";
  if (auto home = env("HOME"); !home.empty())
    return home + "/.volt_shell_history";
  return {};
}

line_editor::line_editor(std::string history_file)
  : history_file_(std::move(history_file)) {
  rl_readline_name = const_cast<char*>("volt");
  using_history();
  stifle_history(history_lines);
  if (!history_file_.empty())
    read_history(history_file_.c_str()); // a missing file is a fresh start
}

line_editor::~line_editor() {
  if (history_file_.empty())
    return;
  if (write_history(history_file_.c_str()) != 0)
    std::fprintf(stderr, "volt-node: shell history not saved to %s: %s\n",
                 history_file_.c_str(), std::strerror(errno));
}

std::optional<std::string> line_editor::read(const std::string& prompt) {
  char* raw = readline(prompt.c_str());
  if (raw == nullptr)
    return std::nullopt;
  std::string line{raw};
  std::free(raw);
  if (line.find_first_not_of(" \t") != std::string::npos && line != last_) {
    add_history(line.c_str());
    last_ = line;
  }
  return line;
}

} // namespace volt
