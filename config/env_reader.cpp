// Applies VOLT_<SECTION>_<KEY> environment overrides through the key table.

#include <algorithm>
#include <cctype>
#include <string_view>

#include "base/error.hpp"
#include "config/config_keys.hpp"
#include "config/did_you_mean.hpp"
#include "config/readers.hpp"

namespace volt {

namespace {

std::string upper(std::string_view text) {
  std::string result{text};
  for (auto& c : result)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return result;
}

std::string lower(std::string_view text) {
  std::string result{text};
  for (auto& c : result)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return result;
}

/// Returns the section whose VOLT_<SECTION>_ prefix `name` starts with, or
/// nullptr. The longest prefix wins, so a future section "kv_cache" never loses
/// VOLT_KV_CACHE_* to a section "kv".
const config_section* section_of(std::string_view name) {
  const config_section* result = nullptr;
  size_t result_size = 0;
  for (const auto& section : config_sections()) {
    auto prefix = "VOLT_" + upper(section.name) + "_";
    if (name.substr(0, prefix.size()) == prefix
        && prefix.size() > result_size) {
      result = &section;
      result_size = prefix.size();
    }
  }
  return result;
}

std::string unknown_variable(const config_section& section,
                             std::string_view key) {
  std::string result = "unknown key '" + std::string{key} + "' in ["
                       + section.name + "]";
  auto best = closest_match(key, config_key_names(section.name));
  if (const auto* suggestion = find_config_key(section.name, best))
    return result + " (did you mean " + env_name(*suggestion) + "?)";
  std::string all;
  for (const auto& key : config_keys())
    if (std::string_view{key.section} == section.name)
      all += (all.empty() ? "" : ", ") + env_name(key);
  return result + " (valid variables: " + all + ")";
}

} // namespace

caf::error apply_environment(const std::map<std::string, std::string>& env,
                             node_config& cfg) {
  for (const auto& entry : env) {
    // Named references, not a structured binding: C++17 lets no lambda
    // capture one (GCC allows it, Clang does not).
    const auto& name = entry.first;
    const auto& text = entry.second;
    const auto* section = section_of(name);
    if (section == nullptr)
      continue; // VOLT_LOG_LEVEL, VOLT_TEST_DATA_DIR, ...: not configuration
                // keys
    auto prefix = "VOLT_" + upper(section->name) + "_";
    auto key_part = lower(std::string_view{name}.substr(prefix.size()));
    auto fail = [&](const std::string& what) {
      return make_volt_error(volt_errc::invalid_config,
                             "environment: " + name + ": " + what);
    };
    const auto* key = find_config_key(section->name, key_part);
    if (key == nullptr)
      return fail(unknown_variable(*section, key_part));
    key_value value;
    auto problem = from_env_text(*key, text, value);
    if (problem.empty())
      problem = check_range(*key, value);
    if (problem.empty())
      problem = key->access.set(cfg, value);
    if (!problem.empty())
      return fail(problem);
  }
  return {};
}

} // namespace volt
