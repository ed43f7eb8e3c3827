#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "http/api_error.hpp"

namespace volt::http {

/// Renders `value` as compact JSON, invalid UTF-8 replaced by U+FFFD (model
/// output can end inside a character; nlohmann would throw on it).
std::string dump_json(const nlohmann::json& value);

/// The same for JSON built in the order its fields should be read (every
/// response: OpenAI's objects read id, object, created, model, choices, ...).
std::string dump_json(const nlohmann::ordered_json& value);

/// Reads the fields of one JSON object, checking each with a one-line error
/// that names it ("temperature: expected a number in [0, 2], got 3"). The
/// first problem is kept and every later read returns nothing, so a parser
/// reads its fields in order and checks error() once at the end.
class field_reader {
public:
  /// Reads `object`, whose fields are named `prefix` + name in errors (e.g.
  /// "stream_options."). A value that is not an object is an error about
  /// `prefix` itself.
  explicit field_reader(const nlohmann::json& object, std::string prefix = {});

  /// The field when present and not null; marks it as read.
  const nlohmann::json* find(const std::string& name);

  std::optional<bool> boolean(const std::string& name);

  /// An integer in [min, max]; a float with an integral value counts.
  std::optional<int64_t> integer(const std::string& name, int64_t min,
                                 int64_t max);

  /// A finite number in [min, max].
  std::optional<double> number(const std::string& name, double min,
                               double max);

  std::optional<std::string> string(const std::string& name);

  /// Accepts a field of OpenAI's API that Volt does not implement only with
  /// a value that changes nothing (null or `neutral`), so that a client
  /// relying on it learns so instead of getting a different answer.
  void unsupported(const std::string& name, const nlohmann::json& neutral);

  /// Accepts and ignores a field that does not change the answer.
  void ignore(const std::string& name);

  /// Records `message` about the field `name` unless a problem is recorded.
  void fail(const std::string& name, const std::string& message);

  /// Keeps `err` (found in a nested object, say) unless a problem is
  /// recorded.
  void adopt(const std::optional<api_error>& err) {
    if (!error_ && err)
      error_ = err;
  }

  /// Fails on the first field that nothing read, suggesting the closest
  /// known name: a misspelt parameter must not silently change nothing.
  void reject_unknown();

  /// The first problem, if any.
  const std::optional<api_error>& error() const {
    return error_;
  }

  /// The full name of field `name` (prefix included), for errors.
  std::string param(const std::string& name) const {
    return prefix_ + name;
  }

private:
  /// The field's value if present and not null and no problem is recorded.
  const nlohmann::json* get(const std::string& name);

  const nlohmann::json& object_;
  std::string prefix_;
  /// Fields read (or known and ignored).
  std::set<std::string> known_;
  std::optional<api_error> error_;
};

/// "a string", "an array", ... for errors about `value`'s type.
std::string json_kind(const nlohmann::json& value);

/// `value` as a short excerpt of JSON for errors.
std::string json_excerpt(const nlohmann::json& value);

} // namespace volt::http
