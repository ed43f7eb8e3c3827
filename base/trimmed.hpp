#pragma once

#include <string>
#include <string_view>

namespace volt {

/// `text` without the spaces, tabs, carriage returns and newlines around it:
/// what an editor or `echo` adds to a secret or a key written to a file.
inline std::string trimmed(std::string_view text) {
  constexpr std::string_view space = " \t\r\n";
  auto first = text.find_first_not_of(space);
  if (first == std::string_view::npos)
    return {};
  return std::string{
    text.substr(first, text.find_last_not_of(space) - first + 1)};
}

} // namespace volt
