#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "caf/expected.hpp"

namespace volt::json {

class value;
struct member;

/// Nesting depth beyond which `parse` rejects a document, so hostile input
/// cannot exhaust the stack (of the parser or of the recursive destructor).
constexpr size_t max_depth = 256;

/// The kinds of JSON values.
enum class kind : uint8_t { null, boolean, number, string, array, object };

/// Returns "null", "boolean", "number", "string", "array" or "object".
const char* to_string(kind x);

/// One JSON value. Objects keep their key order; accessors of the wrong kind
/// return an empty default (false, 0, "", no elements), so callers check `is_*`
/// first where it matters.
class value {
public:
  /// Constructs null.
  value() = default;

  /// Constructs a boolean.
  explicit value(bool x);

  /// Constructs a number from a double (integral when it holds an exact int64).
  explicit value(double x);

  /// Constructs an integral number.
  explicit value(int64_t x);

  /// Constructs an integral number (avoids the int -> bool/double ambiguity).
  explicit value(int x) : value(static_cast<int64_t>(x)) {}

  /// Constructs a string (avoids the pointer -> bool conversion).
  explicit value(const char* x) : value(std::string{x}) {}

  /// Constructs a string.
  explicit value(std::string x);

  /// Constructs an array.
  explicit value(std::vector<value> xs);

  /// Constructs an object; keys must be unique.
  explicit value(std::vector<member> xs);

  /// Returns the kind of this value.
  kind type() const {
    return kind_;
  }

  bool is_null() const {
    return kind_ == kind::null;
  }

  bool is_bool() const {
    return kind_ == kind::boolean;
  }

  bool is_number() const {
    return kind_ == kind::number;
  }

  /// True for numbers whose value is an integer that int64_t holds exactly;
  /// integers written without fraction or exponent are read digit by digit, so
  /// they stay exact beyond 2^53.
  bool is_int64() const {
    return kind_ == kind::number && integral_;
  }

  bool is_string() const {
    return kind_ == kind::string;
  }

  bool is_array() const {
    return kind_ == kind::array;
  }

  bool is_object() const {
    return kind_ == kind::object;
  }

  /// The boolean; false for other kinds.
  bool as_bool() const {
    return kind_ == kind::boolean && bool_;
  }

  /// The number as double (nearest); 0 for other kinds.
  double as_double() const {
    return kind_ == kind::number ? number_ : 0.0;
  }

  /// The exact integer when `is_int64()`; 0 otherwise.
  int64_t as_int64() const {
    return is_int64() ? int_ : 0;
  }

  /// The string (UTF-8); empty for other kinds.
  const std::string& as_string() const;

  /// The elements of an array; empty for other kinds.
  const std::vector<value>& as_array() const;

  /// The entries of an object in document order; empty for other kinds.
  const std::vector<member>& as_object() const;

  /// Returns the value of `key`, or nullptr if absent or this is not an object.
  /// Linear in the number of keys: objects we look up by key are small; iterate
  /// `as_object()` otherwise.
  const value* find(std::string_view key) const;

  /// Number of elements of an array or entries of an object; 0 for other kinds.
  size_t size() const;

  /// Element `i` of an array; precondition: `is_array() && i < size()`.
  const value& operator[](size_t i) const;

private:
  friend class parser;

  kind kind_ = kind::null;
  bool bool_ = false;
  bool integral_ = false;
  double number_ = 0;
  int64_t int_ = 0;
  std::string string_;
  std::vector<value> array_;
  std::vector<member> object_;
};

/// One key-value entry of an object.
struct member {
  std::string key;
  value val;
};

/// Parses one JSON document (RFC 8259, UTF-8, no extensions). Errors are one
/// line:
/// "<source_name>:<line>:<column>: <what> (byte <offset>)".
caf::expected<value> parse(std::string_view text,
                           const std::string& source_name);

/// Reads and parses the file `path`; errors name the file.
caf::expected<value> parse_file(const std::string& path);

/// Returns `text` as a quoted JSON string with the escapes RFC 8259 requires.
std::string quote(std::string_view text);

/// Renders `x` as compact JSON; numbers round-trip exactly (shortest
/// representation).
std::string to_json(const value& x);

} // namespace volt::json
