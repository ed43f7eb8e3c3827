// Value handling shared by the TOML reader, the environment overrides and the
// docs.

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "config/config_keys.hpp"

namespace volt {

namespace {

/// Describes the bounds in messages, e.g. "an integer in [1, 65535]".
std::string bounded_integer(const config_key& key) {
  return "an integer in [" + std::to_string(key.min) + ", "
         + std::to_string(key.max) + "]";
}

std::string_view trim(std::string_view text) {
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
  };
  while (!text.empty() && is_space(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_space(text.back()))
    text.remove_suffix(1);
  return text;
}

/// Parses a whole decimal integer with optional sign; rejects "", "12abc" and
/// overflow.
std::optional<int64_t> parse_integer(std::string_view text) {
  std::string str{trim(text)};
  if (str.empty())
    return std::nullopt;
  errno = 0;
  char* end = nullptr;
  auto result = std::strtoll(str.c_str(), &end, 10);
  if (errno == ERANGE || end != str.c_str() + str.size())
    return std::nullopt;
  return static_cast<int64_t>(result);
}

std::vector<std::string_view> split_commas(std::string_view text) {
  std::vector<std::string_view> result;
  if (trim(text).empty())
    return result; // "" is the empty list, so an override can clear a list
  size_t begin = 0;
  for (;;) {
    auto comma = text.find(',', begin);
    result.push_back(trim(text.substr(begin, comma - begin)));
    if (comma == std::string_view::npos)
      return result;
    begin = comma + 1;
  }
}

} // namespace

std::string describe_type(key_type type) {
  switch (type) {
    case key_type::boolean: return "a boolean";
    case key_type::integer: return "an integer";
    case key_type::string: return "a string";
    case key_type::integer_list: return "an array of integers";
    case key_type::string_list: return "an array of strings";
    case key_type::placement_list:
      return "an array of tables {node = \"host:port\", experts = [..]}";
  }
  return "a value";
}

std::string quote(std::string_view text) {
  std::string result = "\"";
  for (auto c : text) {
    switch (c) {
      case '"': result += "\\\""; break;
      case '\\': result += "\\\\"; break;
      case '\n': result += "\\n"; break;
      case '\t': result += "\\t"; break;
      case '\r': result += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x",
                        static_cast<unsigned char>(c));
          result += buf;
        } else {
          result += c;
        }
    }
  }
  return result + "\"";
}

std::string to_toml_literal(const key_value& value) {
  auto list = [](const auto& xs, auto render) {
    std::string result = "[";
    for (size_t i = 0; i < xs.size(); ++i)
      result += (i == 0 ? "" : ", ") + render(xs[i]);
    return result + "]";
  };
  if (auto x = std::get_if<bool>(&value))
    return *x ? "true" : "false";
  if (auto x = std::get_if<int64_t>(&value))
    return std::to_string(*x);
  if (auto x = std::get_if<std::string>(&value))
    return quote(*x);
  if (auto xs = std::get_if<std::vector<int64_t>>(&value))
    return list(*xs, [](int64_t x) { return std::to_string(x); });
  if (auto xs = std::get_if<std::vector<placement_entry>>(&value))
    return list(*xs, [&](const placement_entry& x) {
      std::vector<int64_t> ids(x.experts.begin(), x.experts.end());
      return "{node = " + quote(x.node)
             + ", experts = " + to_toml_literal(key_value{ids}) + "}";
    });
  return list(std::get<std::vector<std::string>>(value), quote);
}

std::string check_range(const config_key& key, const key_value& value) {
  auto out_of_range = [&](int64_t x) { return x < key.min || x > key.max; };
  if (auto x = std::get_if<int64_t>(&value); x && out_of_range(*x))
    return "expected " + bounded_integer(key) + ", got " + std::to_string(*x);
  if (auto xs = std::get_if<std::vector<int64_t>>(&value))
    for (size_t i = 0; i < xs->size(); ++i)
      if (out_of_range((*xs)[i]))
        return "element " + std::to_string(i) + ": expected "
               + bounded_integer(key) + ", got " + std::to_string((*xs)[i]);
  if (auto xs = std::get_if<std::vector<placement_entry>>(&value))
    for (size_t i = 0; i < xs->size(); ++i)
      for (auto id : (*xs)[i].experts)
        if (out_of_range(id))
          return "element " + std::to_string(i) + ": experts: expected "
                 + bounded_integer(key) + ", got " + std::to_string(id);
  return {};
}

std::string from_env_text(const config_key& key, std::string_view text,
                          key_value& out) {
  switch (key.access.type) {
    case key_type::boolean: {
      auto word = trim(text);
      if (word == "true" || word == "1" || word == "false" || word == "0") {
        out = word == "true" || word == "1";
        return {};
      }
      return "expected true or false (or 1 or 0), got " + quote(text);
    }
    case key_type::integer:
      if (auto x = parse_integer(text)) {
        out = *x;
        return {};
      }
      return "expected " + bounded_integer(key) + ", got " + quote(text);
    case key_type::string: out = std::string{text}; return {};
    case key_type::integer_list: {
      std::vector<int64_t> xs;
      for (auto item : split_commas(text)) {
        auto x = parse_integer(item);
        if (!x)
          return "expected a comma-separated list of integers in ["
                 + std::to_string(key.min) + ", " + std::to_string(key.max)
                 + "], got " + quote(text);
        xs.push_back(*x);
      }
      out = std::move(xs);
      return {};
    }
    case key_type::string_list: {
      std::vector<std::string> xs;
      for (auto item : split_commas(text)) {
        if (item.empty())
          return "expected a comma-separated list of non-empty strings, got "
                 + quote(text);
        xs.emplace_back(item);
      }
      out = std::move(xs);
      return {};
    }
    case key_type::placement_list: {
      // "host:port=0,1,2;host:port=3,4": ';' between nodes, ',' between ids.
      std::vector<placement_entry> xs;
      auto bad = [&] {
        return "expected \"host:port=id,id,...;host:port=...\", got "
               + quote(text);
      };
      size_t begin = 0;
      while (!trim(text).empty()) {
        auto semi = text.find(';', begin);
        auto item = text.substr(begin, semi - begin);
        auto eq = item.find('=');
        if (eq == std::string_view::npos || trim(item.substr(0, eq)).empty())
          return bad();
        placement_entry entry{std::string{trim(item.substr(0, eq))}, {}};
        for (auto id : split_commas(item.substr(eq + 1))) {
          auto x = parse_integer(id);
          if (!x || *x < key.min || *x > key.max)
            return bad();
          entry.experts.push_back(static_cast<uint32_t>(*x));
        }
        xs.push_back(std::move(entry));
        if (semi == std::string_view::npos)
          break;
        begin = semi + 1;
      }
      out = std::move(xs);
      return {};
    }
  }
  return "unsupported key type";
}

} // namespace volt
