// Reads a TOML document into node_config through the key table.

#include <algorithm>
#include <limits>
#include <string_view>
#include <tuple>
#include <vector>

#include <toml++/toml.h>

#include "base/error.hpp"
#include "config/config_keys.hpp"
#include "config/did_you_mean.hpp"
#include "config/readers.hpp"

// Debian's libtomlplusplus is built with exceptions (its symbols live in
// toml::v3::ex). With exceptions off, toml::parse would return a parse_result
// instead of throwing, and the catch below would silently never run, so refuse
// to build that way.
static_assert(TOML_EXCEPTIONS,
              "config/toml_reader.cpp catches toml::parse_error");

namespace volt {

namespace {

caf::error config_error(std::string what) {
  return make_volt_error(volt_errc::invalid_config, std::move(what));
}

std::string describe_toml_type(toml::node_type type) {
  switch (type) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

/// toml++ descriptions may span lines; our errors are one line.
std::string one_line(std::string_view text) {
  std::string result;
  for (auto c : text)
    result += (c == '\n' || c == '\r') ? ' ' : c;
  while (!result.empty() && result.back() == ' ')
    result.pop_back();
  return result;
}

/// Reads [{node = "host:port", experts = [..]}, ...] (inline tables or
/// [[router.placement]] blocks).
std::string placement_from_toml(const toml::node& node, key_value& out) {
  const char* shape = "an array of tables {node = \"host:port\", experts = "
                      "[..]}";
  if (!node.is_array())
    return std::string{"expected "} + shape + ", got "
           + describe_toml_type(node.type());
  std::vector<placement_entry> entries;
  const auto& items = *node.as_array();
  for (size_t i = 0; i < items.size(); ++i) {
    auto where = "element " + std::to_string(i) + ": ";
    const auto* table = items.get(i)->as_table();
    if (table == nullptr)
      return where
             + "expected a table {node = \"host:port\", experts = "
               "[..]}, got "
             + describe_toml_type(items.get(i)->type());
    placement_entry entry;
    for (auto&& [key, value] : *table) {
      if (key.str() == "node" && value.is_string()) {
        entry.node = value.as_string()->get();
      } else if (key.str() == "experts" && value.is_array()) {
        for (auto&& id : *value.as_array()) {
          if (!id.is_integer())
            return where + "experts: expected integers, got "
                   + describe_toml_type(id.type());
          auto x = id.as_integer()->get();
          if (x < 0 || x > std::numeric_limits<uint32_t>::max())
            return where + "experts: " + std::to_string(x)
                   + " is not an expert id";
          entry.experts.push_back(static_cast<uint32_t>(x));
        }
      } else if (key.str() == "node" || key.str() == "experts") {
        return where + std::string{key.str()} + ": wrong type "
               + describe_toml_type(value.type());
      } else {
        auto best = closest_match(key.str(), {"node", "experts"});
        return where + "unknown key '" + std::string{key.str()} + "'"
               + (best.empty() ? "" : " (did you mean '" + best + "'?)");
      }
    }
    if (entry.node.empty())
      return where + "missing node = \"host:port\"";
    entries.push_back(std::move(entry));
  }
  out = std::move(entries);
  return {};
}

/// Converts a TOML value to `type`; returns "" or e.g. "expected an integer,
/// got a string".
std::string from_toml(const toml::node& node, key_type type, key_value& out) {
  auto mismatch = [&] {
    return "expected " + describe_type(type) + ", got "
           + describe_toml_type(node.type());
  };
  switch (type) {
    case key_type::boolean:
      if (!node.is_boolean())
        return mismatch();
      out = node.as_boolean()->get();
      return {};
    case key_type::integer:
      if (!node.is_integer())
        return mismatch();
      out = node.as_integer()->get();
      return {};
    case key_type::string:
      if (!node.is_string())
        return mismatch();
      out = node.as_string()->get();
      return {};
    case key_type::placement_list: return placement_from_toml(node, out);
    case key_type::integer_list:
    case key_type::string_list: break;
  }
  if (!node.is_array())
    return mismatch();
  const auto& items = *node.as_array();
  auto want = type == key_type::integer_list ? toml::node_type::integer
                                             : toml::node_type::string;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& item = *items.get(i);
    if (item.type() != want)
      return "expected " + describe_type(type) + ", got "
             + describe_toml_type(item.type()) + " at element "
             + std::to_string(i);
    if (want == toml::node_type::integer)
      ints.push_back(item.as_integer()->get());
    else
      strings.push_back(item.as_string()->get());
  }
  if (type == key_type::integer_list)
    out = std::move(ints);
  else
    out = std::move(strings);
  return {};
}

std::string unknown_section(std::string_view name) {
  auto names = config_section_names();
  auto best = closest_match(name, names);
  if (!best.empty())
    return "unknown section (did you mean '" + best + "'?)";
  std::string all;
  for (const auto& x : names)
    all += (all.empty() ? "" : ", ") + x;
  return "unknown section (valid sections: " + all + ")";
}

std::string unknown_key(std::string_view section, std::string_view name) {
  auto names = config_key_names(section);
  if (auto best = closest_match(name, names); !best.empty())
    return "unknown key (did you mean '" + best + "'?)";
  // Right key, wrong section: say where it belongs.
  for (const auto& key : config_keys())
    if (name == key.name)
      return "unknown key (did you mean [" + std::string{key.section} + "] "
             + key.name + "?)";
  std::string all;
  for (const auto& x : names)
    all += (all.empty() ? "" : ", ") + x;
  return "unknown key (valid keys: " + all + ")";
}

bool is_section(std::string_view name) {
  return !config_key_names(name).empty();
}

/// A key above the first section header, e.g. `port = 7700`.
std::string stray_key(std::string_view name) {
  for (const auto& key : config_keys())
    if (name == key.name)
      return "keys belong in a section (did you mean ["
             + std::string{key.section} + "] " + key.name + "?)";
  return "keys belong in a section";
}

/// A section header or a key, with its position so that problems come out in
/// file order (toml++ iterates tables in key order).
struct entry {
  toml::source_position where;
  std::string section;
  std::string key; // empty for the section itself
  const toml::node* value;
};

std::vector<entry> entries_in_file_order(const toml::table& root) {
  std::vector<entry> result;
  for (auto&& [name, node] : root) {
    result.push_back({name.source().begin, std::string{name.str()}, {}, &node});
    if (node.is_table() && is_section(name.str()))
      for (auto&& [key, value] : *node.as_table())
        result.push_back({key.source().begin, std::string{name.str()},
                          std::string{key.str()}, &value});
  }
  std::stable_sort(result.begin(), result.end(),
                   [](const entry& x, const entry& y) {
                     return std::tie(x.where.line, x.where.column)
                            < std::tie(y.where.line, y.where.column);
                   });
  return result;
}

} // namespace

caf::error read_toml_text(const std::string& text, const std::string& source,
                          node_config& cfg) {
  toml::table root;
  try {
    root = toml::parse(std::string_view{text}, std::string_view{source});
  } catch (const toml::parse_error& err) {
    const auto& pos = err.source().begin;
    return config_error(source + ":" + std::to_string(pos.line) + ":"
                        + std::to_string(pos.column) + ": "
                        + one_line(err.description()));
  }
  for (const auto& x : entries_in_file_order(root)) {
    auto prefix = source + ": [" + x.section + "]";
    if (x.key.empty()) {
      if (!is_section(x.section)) {
        if (x.value->is_table())
          return config_error(prefix + ": " + unknown_section(x.section));
        return config_error(source + ": " + x.section + ": "
                            + stray_key(x.section));
      }
      if (!x.value->is_table())
        return config_error(prefix + ": expected a table, got "
                            + describe_toml_type(x.value->type()));
      continue;
    }
    prefix += " " + x.key + ": ";
    const auto* key = find_config_key(x.section, x.key);
    if (key == nullptr)
      return config_error(prefix + unknown_key(x.section, x.key));
    key_value value;
    auto problem = from_toml(*x.value, key->access.type, value);
    if (problem.empty())
      problem = check_range(*key, value);
    if (problem.empty())
      problem = key->access.set(cfg, value);
    if (!problem.empty())
      return config_error(prefix + problem);
  }
  return {};
}

} // namespace volt
