#pragma once

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/config_keys.hpp"
#include "config/did_you_mean.hpp"

// field<&node_config::SECTION, &SECTION_section::KEY, CHECK>() builds the
// key_access of a table entry: the key's type follows from the field's C++
// type, and CHECK (optional) is a `std::string check(const T&)` that returns ""
// or the problem. Only config_keys.cpp needs this.

namespace volt::detail {

// -- field type -> key type
// ---------------------------------------------------------------

template <class T>
constexpr key_type key_type_of() {
  if constexpr (std::is_same_v<T, std::vector<uint32_t>>)
    return key_type::integer_list;
  else if constexpr (std::is_same_v<T, std::vector<std::string>>)
    return key_type::string_list;
  else if constexpr (std::is_same_v<T, std::vector<placement_entry>>)
    return key_type::placement_list;
  else if constexpr (std::is_same_v<T, bool>)
    return key_type::boolean;
  else if constexpr (std::is_integral_v<T>)
    return key_type::integer;
  else // std::string and enums spelled as strings
    return key_type::string;
}

// -- field -> key_value
// ---------------------------------------------------------------------

inline key_value to_key_value(bool x) {
  return x;
}

inline key_value to_key_value(uint16_t x) {
  return int64_t{x};
}

inline key_value to_key_value(uint32_t x) {
  return int64_t{x};
}

inline key_value to_key_value(const std::vector<placement_entry>& xs) {
  return xs;
}

inline key_value to_key_value(const std::string& x) {
  return x;
}

inline key_value to_key_value(const std::vector<uint32_t>& xs) {
  return std::vector<int64_t>(xs.begin(), xs.end());
}

inline key_value to_key_value(const std::vector<std::string>& xs) {
  return xs;
}

inline key_value to_key_value(node_role x) {
  return to_string(x);
}

inline key_value to_key_value(discovery_mode x) {
  return to_string(x);
}

inline key_value to_key_value(missing_expert_policy x) {
  return to_string(x);
}

inline key_value to_key_value(expert_miss_mode x) {
  return to_string(x);
}

// -- key_value -> field (type and range already checked by the caller)
// ----------------------

inline std::string from_key_value(const key_value& v, bool& x) {
  x = std::get<bool>(v);
  return {};
}

inline std::string from_key_value(const key_value& v, uint16_t& x) {
  x = static_cast<uint16_t>(std::get<int64_t>(v));
  return {};
}

inline std::string from_key_value(const key_value& v, uint32_t& x) {
  x = static_cast<uint32_t>(std::get<int64_t>(v));
  return {};
}

inline std::string from_key_value(const key_value& v,
                                  std::vector<placement_entry>& xs) {
  xs = std::get<std::vector<placement_entry>>(v);
  return {};
}

inline std::string from_key_value(const key_value& v, std::string& x) {
  x = std::get<std::string>(v);
  return {};
}

inline std::string from_key_value(const key_value& v,
                                  std::vector<uint32_t>& xs) {
  const auto& ys = std::get<std::vector<int64_t>>(v);
  xs.assign(ys.begin(), ys.end());
  return {};
}

inline std::string from_key_value(const key_value& v,
                                  std::vector<std::string>& xs) {
  xs = std::get<std::vector<std::string>>(v);
  return {};
}

/// Maps a string to one of `names`; the error lists all of them and suggests
/// the closest.
template <class Enum, size_t N>
std::string parse_enum(const key_value& v, const char* what,
                       const std::pair<const char*, Enum> (&names)[N],
                       Enum& x) {
  const auto& text = std::get<std::string>(v);
  std::vector<std::string> candidates;
  for (const auto& [name, value] : names) {
    if (text == name) {
      x = value;
      return {};
    }
    candidates.emplace_back(name);
  }
  std::string expected;
  for (size_t i = 0; i < N; ++i)
    expected += (i == 0 ? "" : i + 1 == N ? " or " : ", ") + candidates[i];
  std::string result = "unknown " + std::string{what} + " '" + text
                       + "' (expected " + expected;
  if (auto best = closest_match(text, candidates); !best.empty())
    result += "; did you mean '" + best + "'?";
  return result + ")";
}

inline std::string from_key_value(const key_value& v, node_role& x) {
  static constexpr std::pair<const char*, node_role> names[] = {
    {"standalone", node_role::standalone},
    {"router", node_role::router},
    {"worker", node_role::worker},
  };
  return parse_enum(v, "role", names, x);
}

inline std::string from_key_value(const key_value& v, discovery_mode& x) {
  static constexpr std::pair<const char*, discovery_mode> names[] = {
    {"static", discovery_mode::static_list},
    {"redis", discovery_mode::redis},
  };
  return parse_enum(v, "mode", names, x);
}

inline std::string from_key_value(const key_value& v,
                                  missing_expert_policy& x) {
  static constexpr std::pair<const char*, missing_expert_policy> names[] = {
    {"fail", missing_expert_policy::fail},
    {"renormalize", missing_expert_policy::renormalize},
  };
  return parse_enum(v, "policy", names, x);
}

inline std::string from_key_value(const key_value& v, expert_miss_mode& x) {
  static constexpr std::pair<const char*, expert_miss_mode> names[] = {
    {"auto", expert_miss_mode::automatic},
    {"load", expert_miss_mode::load},
    {"host", expert_miss_mode::host},
  };
  return parse_enum(v, "mode", names, x);
}

} // namespace volt::detail

namespace volt {

/// Builds the key_access for the field `cfg.*Section.*Field`, checked by
/// `Check` if given.
template <auto Section, auto Field, auto Check = nullptr>
key_access field() {
  using value_type
    = std::decay_t<decltype((std::declval<node_config&>().*Section).*Field)>;
  key_access result;
  result.type = detail::key_type_of<value_type>();
  result.get = [](const node_config& cfg) {
    return detail::to_key_value((cfg.*Section).*Field);
  };
  result.set = [](node_config& cfg, const key_value& v) -> std::string {
    value_type x{};
    if (auto problem = detail::from_key_value(v, x); !problem.empty())
      return problem;
    if constexpr (!std::is_same_v<decltype(Check), std::nullptr_t>)
      if (auto problem = Check(x); !problem.empty())
        return problem;
    (cfg.*Section).*Field = std::move(x);
    return {};
  };
  return result;
}

} // namespace volt
