#include "base/error.hpp"

#include "caf/message.hpp"
#include "caf/sec.hpp"

namespace volt {

std::string to_string(volt_errc x) {
  switch (x) {
    case volt_errc::invalid_config: return "invalid_config";
    case volt_errc::invalid_checkpoint: return "invalid_checkpoint";
    case volt_errc::invalid_request: return "invalid_request";
    case volt_errc::missing_expert: return "missing_expert";
    case volt_errc::out_of_pages: return "out_of_pages";
    case volt_errc::internal: return "internal";
    case volt_errc::queue_full: return "queue_full";
    case volt_errc::non_finite: return "non_finite";
  }
  return "volt_errc(" + std::to_string(static_cast<int>(x)) + ")";
}

std::string one_line(std::string what) {
  if (what.find_first_of("\r\n") == std::string::npos)
    return what;
  std::string line;
  line.reserve(what.size() + 8);
  for (char c : what) {
    if (c == '\n')
      line += "\\n";
    else if (c == '\r')
      line += "\\r";
    else
      line += c;
  }
  return line;
}

caf::error make_volt_error(volt_errc code, std::string what) {
  // One line whatever it quotes: a value from outside (a variable, a TOML
  // string, a request field) may hold line breaks, which would let it forge
  // log lines or break the one-line contract of every message.
  return caf::make_error(code, one_line(std::move(what)));
}

std::string describe(const caf::error& err) {
  if (!err)
    return "no error";
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  if (err.category() == caf::atom("system"))
    return "CAF: " + to_string(static_cast<caf::sec>(err.code()))
           + (ctx.empty() ? "" : " " + to_string(ctx));
  return caf::to_string(err);
}

} // namespace volt
