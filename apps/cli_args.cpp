#include "apps/cli_args.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "base/error.hpp"
#include "config/did_you_mean.hpp"
#include "config/endpoint.hpp"
#include "config/key_access.hpp"

namespace volt {

namespace {

caf::error flag_error(const std::string& what) {
  return make_volt_error(volt_errc::invalid_config, what);
}

bool parse_integer(const std::string& text, int64_t& out) {
  if (text.empty())
    return false;
  errno = 0;
  char* end = nullptr;
  auto value = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size())
    return false;
  out = value;
  return true;
}

} // namespace

caf::expected<cli_args> cli_args::parse(const std::vector<std::string>& args,
                                        const std::vector<flag_spec>& specs) {
  cli_args result;
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& arg = args[i];
    if (arg.rfind("--", 0) != 0)
      return flag_error("unexpected argument '" + arg
                        + "' (flags start with --)");
    auto name = arg.substr(2);
    std::string value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const flag_spec* spec = nullptr;
    std::vector<std::string> names;
    for (const auto& s : specs) {
      names.push_back(s.name);
      if (s.name == name)
        spec = &s;
    }
    if (spec == nullptr) {
      auto hint = closest_match(name, names);
      return flag_error(
        "--" + name + ": unknown flag"
        + (hint.empty() ? "" : " (did you mean '--" + hint + "'?)"));
    }
    if (spec->takes_value && !inline_value) {
      if (i + 1 >= args.size())
        return flag_error("--" + name + ": missing value");
      value = args[++i];
    } else if (!spec->takes_value && inline_value) {
      return flag_error("--" + name + ": takes no value");
    }
    result.values_[name] = value;
  }
  return result;
}

bool cli_args::has(const std::string& name) const {
  return values_.count(name) > 0;
}

std::string cli_args::get(const std::string& name,
                          const std::string& fallback) const {
  auto i = values_.find(name);
  return i == values_.end() ? fallback : i->second;
}

caf::expected<int64_t> cli_args::get_int(const std::string& name,
                                         int64_t fallback, int64_t lo,
                                         int64_t hi) const {
  if (!has(name))
    return fallback;
  int64_t value = 0;
  if (!parse_integer(get(name), value) || value < lo || value > hi)
    return flag_error("--" + name + ": expected an integer in ["
                      + std::to_string(lo) + ", " + std::to_string(hi)
                      + "], got '" + get(name) + "'");
  return value;
}

caf::expected<double> cli_args::get_double(const std::string& name,
                                           double fallback, double lo,
                                           double hi) const {
  if (!has(name))
    return fallback;
  auto text = get(name);
  char* end = nullptr;
  errno = 0;
  double value = text.empty() ? 0.0 : std::strtod(text.c_str(), &end);
  if (text.empty() || errno != 0 || end != text.c_str() + text.size()
      || !std::isfinite(value) || value < lo || value > hi) {
    char range[64];
    std::snprintf(range, sizeof(range), "[%g, %g]", lo, hi);
    return flag_error("--" + name + ": expected a number in " + range
                      + ", got '" + text + "'");
  }
  return value;
}

caf::expected<std::vector<int64_t>>
cli_args::get_int_list(const std::string& name, int64_t lo, int64_t hi) const {
  std::vector<int64_t> out;
  auto text = get(name);
  size_t pos = 0;
  while (pos <= text.size()) {
    auto comma = text.find(',', pos);
    auto item = text.substr(pos, comma == std::string::npos ? std::string::npos
                                                            : comma - pos);
    int64_t value = 0;
    if (!parse_integer(item, value) || value < lo || value > hi)
      return flag_error("--" + name + ": item " + std::to_string(out.size())
                        + " '" + item + "' is not an integer in ["
                        + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    out.push_back(value);
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return out;
}

caf::expected<int> cli_args::get_device(const std::string& name,
                                        const std::string& fallback) const {
  auto text = get(name, fallback);
  if (auto device = parse_device(text))
    return *device;
  return flag_error("--" + name + ": expected cpu or cuda:N, got '" + text
                    + "'");
}

caf::expected<weight_quantization>
cli_args::get_quantization(const std::string& name) const {
  auto q = parse_quantization(get(name, "none"));
  if (!q)
    return flag_error("--" + name + ": " + describe(q.error()));
  return *q;
}

caf::expected<expert_miss_mode>
cli_args::get_expert_misses(const std::string& name) const {
  expert_miss_mode mode{};
  // The configuration's own spelling and error ([worker] expert_misses).
  if (auto problem = detail::from_key_value(key_value{get(name, "auto")}, mode);
      !problem.empty())
    return flag_error("--" + name + ": " + problem);
  return mode;
}

caf::error apply_log_level(const cli_args& args, log_level fallback) {
  constexpr const char* expected
    = "' (expected debug, info, warning, error or quiet)";
  auto level = fallback;
  const char* env = std::getenv("VOLT_LOG_LEVEL");
  if (args.has("log-level")) {
    if (!parse_log_level(args.get("log-level"), level))
      return flag_error("--log-level: unknown level '" + args.get("log-level")
                        + expected);
  } else if (env != nullptr && *env != '\0' && !parse_log_level(env, level)) {
    return flag_error("environment: VOLT_LOG_LEVEL: unknown level '"
                      + std::string{env} + expected);
  }
  set_log_level(level);
  return caf::none;
}

std::vector<flag_spec> with_flags(std::vector<flag_spec> flags,
                                  const std::vector<flag_spec>& more) {
  flags.insert(flags.end(), more.begin(), more.end());
  return flags;
}

std::string render_flags(const std::vector<flag_spec>& specs) {
  std::string out;
  for (const auto& s : specs) {
    auto left = "  --" + s.name + (s.takes_value ? " VALUE" : "");
    left.resize(std::max<size_t>(left.size() + 1, 28), ' ');
    out += left + s.help + "\n";
  }
  return out;
}

} // namespace volt
