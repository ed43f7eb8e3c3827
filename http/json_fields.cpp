#include "http/json_fields.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

#include "config/did_you_mean.hpp"

namespace volt::http {

namespace {

std::string range_text(double min, double max) {
  auto show = [](double x) {
    auto text = nlohmann::json(x).dump();
    // 2.0 reads better as 2 in a message.
    if (text.size() > 2 && text.compare(text.size() - 2, 2, ".0") == 0)
      text.resize(text.size() - 2);
    return text;
  };
  return "[" + show(min) + ", " + show(max) + "]";
}

} // namespace

std::string dump_json(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string dump_json(const nlohmann::ordered_json& value) {
  return value.dump(-1, ' ', false,
                    nlohmann::ordered_json::error_handler_t::replace);
}

std::string json_kind(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "an integer";
    case nlohmann::json::value_t::number_float: return "a number";
    default: return "a binary value";
  }
}

std::string json_excerpt(const nlohmann::json& value) {
  auto text = dump_json(value);
  constexpr size_t max_chars = 40;
  if (text.size() > max_chars)
    text = text.substr(0, max_chars) + "...";
  return text;
}

field_reader::field_reader(const nlohmann::json& object, std::string prefix)
  : object_(object), prefix_(std::move(prefix)) {
  if (!object_.is_object()) {
    auto name = prefix_.empty() ? std::string{} : prefix_.substr(0, prefix_.size() - 1);
    error_ = bad_request(name, (name.empty() ? "request body" : name)
                                 + ": expected a JSON object, got "
                                 + json_kind(object_));
  }
}

const nlohmann::json* field_reader::get(const std::string& name) {
  known_.insert(name);
  if (error_)
    return nullptr;
  auto i = object_.find(name);
  if (i == object_.end() || i->is_null())
    return nullptr;
  return &*i;
}

const nlohmann::json* field_reader::find(const std::string& name) {
  return get(name);
}

void field_reader::fail(const std::string& name, const std::string& message) {
  if (!error_)
    error_ = bad_request(param(name), param(name) + ": " + message);
}

std::optional<bool> field_reader::boolean(const std::string& name) {
  auto x = get(name);
  if (x == nullptr)
    return std::nullopt;
  if (!x->is_boolean()) {
    fail(name, "expected true or false, got " + json_kind(*x));
    return std::nullopt;
  }
  return x->get<bool>();
}

std::optional<int64_t> field_reader::integer(const std::string& name,
                                             int64_t min, int64_t max) {
  auto x = get(name);
  if (x == nullptr)
    return std::nullopt;
  auto wrong = [&] {
    fail(name, "expected an integer in [" + std::to_string(min) + ", "
                 + std::to_string(max) + "], got " + json_excerpt(*x));
    return std::nullopt;
  };
  if (x->is_number_unsigned()
      && x->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    return wrong();
  if (x->is_number_integer()) {
    auto v = x->get<int64_t>();
    if (v < min || v > max)
      return wrong();
    return v;
  }
  if (x->is_number_float()) {
    auto v = x->get<double>();
    if (std::floor(v) != v || v < static_cast<double>(min)
        || v > static_cast<double>(max))
      return wrong();
    return static_cast<int64_t>(v);
  }
  return wrong();
}

std::optional<double> field_reader::number(const std::string& name, double min,
                                           double max) {
  auto x = get(name);
  if (x == nullptr)
    return std::nullopt;
  if (!x->is_number() || !(x->get<double>() >= min && x->get<double>() <= max)) {
    fail(name, "expected a number in " + range_text(min, max) + ", got "
                 + json_excerpt(*x));
    return std::nullopt;
  }
  return x->get<double>();
}

std::optional<std::string> field_reader::string(const std::string& name) {
  auto x = get(name);
  if (x == nullptr)
    return std::nullopt;
  if (!x->is_string()) {
    fail(name, "expected a string, got " + json_kind(*x));
    return std::nullopt;
  }
  return x->get<std::string>();
}

void field_reader::unsupported(const std::string& name,
                               const nlohmann::json& neutral) {
  auto x = get(name);
  if (x != nullptr && *x != neutral)
    fail(name, "not supported by Volt (leave it out, or send "
                 + dump_json(neutral) + ")");
}

void field_reader::ignore(const std::string& name) {
  known_.insert(name);
}

void field_reader::reject_unknown() {
  if (error_)
    return;
  std::vector<std::string> names{known_.begin(), known_.end()};
  for (const auto& item : object_.items()) {
    if (known_.count(item.key()) != 0)
      continue;
    auto guess = closest_match(item.key(), names);
    fail(item.key(), "unknown field"
                       + (guess.empty() ? std::string{}
                                        : " (did you mean '" + guess + "'?)"));
    return;
  }
}

} // namespace volt::http
