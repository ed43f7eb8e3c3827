#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/node_config.hpp"

// The table of configuration keys (config_keys.cpp) and the value handling
// shared by the TOML reader, the environment overrides and the generated
// documentation.

namespace volt {

/// The value types a configuration key accepts.
enum class key_type {
  boolean,
  integer,
  string,
  integer_list,
  string_list,
  placement_list
};

/// A key's value once its type has been checked, whether it came from TOML or
/// the environment.
using key_value
  = std::variant<int64_t, std::string, std::vector<int64_t>,
                 std::vector<std::string>, std::vector<placement_entry>, bool>;

/// Reads and writes the node_config field behind one key.
struct key_access {
  /// Type of the key's value.
  key_type type;
  /// Returns the field's current value (rendered as the documented default).
  key_value (*get)(const node_config& cfg);
  /// Checks `value` beyond type and range, then stores it; returns "" or the
  /// problem.
  std::string (*set)(node_config& cfg, const key_value& value);
};

/// One configuration key: the only place that declares its name, type, range
/// and meaning.
struct config_key {
  /// TOML section, e.g. "network".
  const char* section;
  /// Key within the section, e.g. "port".
  const char* name;
  /// Type and field of node_config; built with field<> from
  /// config/key_access.hpp.
  key_access access;
  /// What the key means, for docs/CONFIGURATION.md.
  const char* doc;
  /// Inclusive bounds of an integer, or of every element of an integer list.
  int64_t min = 0;
  int64_t max = 0;
};

/// One TOML section.
struct config_section {
  /// Section name, e.g. "network".
  const char* name;
  /// What the section is for, for docs/CONFIGURATION.md.
  const char* doc;
};

/// Returns every section in documentation order.
const std::vector<config_section>& config_sections();

/// Returns every key, grouped by section in documentation order.
const std::vector<config_key>& config_keys();

/// Returns the key `section`.`name`, or nullptr.
const config_key* find_config_key(std::string_view section,
                                  std::string_view name);

/// Returns the names of all sections.
std::vector<std::string> config_section_names();

/// Returns the names of the keys of `section`.
std::vector<std::string> config_key_names(std::string_view section);

/// Returns the environment variable that overrides `key`, e.g.
/// VOLT_NETWORK_PORT.
std::string env_name(const config_key& key);

/// Returns e.g. "an integer" or "an array of strings", for messages.
std::string describe_type(key_type type);

/// Returns `text` in double quotes with control characters escaped, so messages
/// stay one line.
std::string quote(std::string_view text);

/// Renders `value` as a TOML literal, e.g. 7700, "cpu" or [0, 1].
std::string to_toml_literal(const key_value& value);

/// Checks an integer (or every element of an integer list) against the key's
/// bounds; returns "" or the problem.
std::string check_range(const config_key& key, const key_value& value);

/// Converts environment text to the key's type (lists are comma-separated);
/// returns "" or the problem.
std::string from_env_text(const config_key& key, std::string_view text,
                          key_value& out);

/// Renders the reference of every section and key as Markdown (the generated
/// part of docs/CONFIGURATION.md).
std::string config_reference_markdown();

} // namespace volt
