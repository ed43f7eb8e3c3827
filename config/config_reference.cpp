// Renders the key table as the reference part of docs/CONFIGURATION.md, so that
// the docs are generated from the one place that declares the keys (the
// config.docs test compares them).

#include "config/config_keys.hpp"

namespace volt {

namespace {

std::string type_column(const config_key& key) {
  auto range = [&] {
    return " " + std::to_string(key.min) + " to " + std::to_string(key.max);
  };
  switch (key.access.type) {
    case key_type::boolean: return "boolean";
    case key_type::integer: return "integer," + range();
    case key_type::string: return "string";
    case key_type::integer_list: return "array of integers," + range();
    case key_type::string_list: return "array of strings";
    case key_type::placement_list: return "array of {node, experts} tables";
  }
  return "?";
}

/// Keeps a table cell in one cell: pipes would start a new column.
std::string cell(const std::string& text) {
  std::string result;
  for (auto c : text) {
    if (c == '|')
      result += '\\';
    result += c;
  }
  return result;
}

} // namespace

std::string config_reference_markdown() {
  const node_config defaults;
  std::string out;
  for (const auto& section : config_sections()) {
    out += "### `[" + std::string{section.name} + "]`\n\n";
    out += std::string{section.doc} + "\n\n";
    out += "| Key | Type | Default | Environment | Meaning |\n";
    out += "| --- | --- | --- | --- | --- |\n";
    for (const auto& key : config_keys()) {
      if (std::string_view{key.section} != section.name)
        continue;
      out += "| `" + std::string{key.name} + "` | " + type_column(key) + " | `"
             + cell(to_toml_literal(key.access.get(defaults))) + "` | `"
             + env_name(key) + "` | " + cell(key.doc) + " |\n";
    }
    out += "\n";
  }
  return out;
}

} // namespace volt
