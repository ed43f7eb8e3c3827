#pragma once

#include <optional>
#include <string>

namespace volt {

/// Where `volt-node shell` keeps its history: $XDG_STATE_HOME/volt_shell_history
/// when XDG_STATE_HOME is set, else ~/.volt_shell_history; empty when neither
/// variable is set.
std::string shell_history_path();

/// Reads lines from a terminal with line editing and history (Debian's
/// libedit, through its readline interface; ~/.editrc applies, under the
/// name "volt"). The history is loaded from its file at construction and
/// written back at destruction; one process uses one editor.
class line_editor {
public:
  /// `history_file` may be empty: no history is loaded or kept.
  explicit line_editor(std::string history_file);
  ~line_editor();

  line_editor(const line_editor&) = delete;
  line_editor& operator=(const line_editor&) = delete;

  /// The next line without its newline, added to the history unless it is
  /// blank or repeats the previous one; nothing at end of input (Ctrl-D).
  std::optional<std::string> read(const std::string& prompt);

private:
  std::string history_file_;
  std::string last_;
};

} // namespace volt
