#include "model/json.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "base/error.hpp"
#include "model/file_io.hpp"

namespace volt::json {

// -- value --------------------------------------------------------------------

namespace {

const std::string empty_string;
const std::vector<value> empty_array;
const std::vector<member> empty_object;

/// Stores `x` as int64 if it is an integer inside int64's range (2^63 itself is
/// not).
bool exact_int64(double x, int64_t& out) {
  if (!std::isfinite(x) || std::trunc(x) != x || x < -9223372036854775808.0
      || x >= 9223372036854775808.0)
    return false;
  out = static_cast<int64_t>(x);
  return true;
}

} // namespace

const char* to_string(kind x) {
  switch (x) {
    case kind::null: return "null";
    case kind::boolean: return "boolean";
    case kind::number: return "number";
    case kind::string: return "string";
    case kind::array: return "array";
    case kind::object: return "object";
  }
  return "?";
}

value::value(bool x) : kind_(kind::boolean), bool_(x) {}

value::value(double x) : kind_(kind::number), number_(x) {
  integral_ = exact_int64(x, int_);
}

value::value(int64_t x)
  : kind_(kind::number), integral_(true), number_(static_cast<double>(x)),
    int_(x) {}

value::value(std::string x) : kind_(kind::string), string_(std::move(x)) {}

value::value(std::vector<value> xs)
  : kind_(kind::array), array_(std::move(xs)) {}

value::value(std::vector<member> xs)
  : kind_(kind::object), object_(std::move(xs)) {}

const std::string& value::as_string() const {
  return kind_ == kind::string ? string_ : empty_string;
}

const std::vector<value>& value::as_array() const {
  return kind_ == kind::array ? array_ : empty_array;
}

const std::vector<member>& value::as_object() const {
  return kind_ == kind::object ? object_ : empty_object;
}

const value* value::find(std::string_view key) const {
  if (kind_ != kind::object)
    return nullptr;
  for (auto& m : object_)
    if (m.key == key)
      return &m.val;
  return nullptr;
}

size_t value::size() const {
  switch (kind_) {
    case kind::array: return array_.size();
    case kind::object: return object_.size();
    default: return 0;
  }
}

const value& value::operator[](size_t i) const {
  return array_[i];
}

// -- parser -------------------------------------------------------------------

/// Recursive-descent parser over a byte buffer; the first error stops it.
class parser {
public:
  parser(std::string_view text, const std::string& source)
    : text_(text), source_(source) {}

  caf::expected<value> run() {
    value result;
    skip_ws();
    if (!parse_value(result, 1))
      return std::move(err_);
    skip_ws();
    if (pos_ != text_.size()) {
      fail(pos_, "unexpected " + describe_byte(pos_) + " after the document");
      return std::move(err_);
    }
    return result;
  }

private:
  // -- errors -----------------------------------------------------------------

  std::string describe_byte(size_t at) const {
    if (at >= text_.size())
      return "end of input";
    auto c = static_cast<unsigned char>(text_[at]);
    if (c >= 0x21 && c < 0x7f)
      return std::string{"character '"} + static_cast<char>(c) + "'";
    char buf[16];
    std::snprintf(buf, sizeof(buf), "byte 0x%02X", c);
    return buf;
  }

  bool fail(size_t at, const std::string& what) {
    at = std::min(at, text_.size());
    size_t line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < at; ++i)
      if (text_[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
    auto col = at - line_start + 1;
    err_ = make_volt_error(volt_errc::invalid_checkpoint,
                           source_ + ":" + std::to_string(line) + ":"
                             + std::to_string(col) + ": " + what + " (byte "
                             + std::to_string(at) + ")");
    return false;
  }

  bool fail_unexpected(size_t at, const char* expected) {
    return fail(at, std::string{"expected "} + expected + ", got "
                      + describe_byte(at));
  }

  // -- scanning ---------------------------------------------------------------

  bool at_end() const {
    return pos_ >= text_.size();
  }

  char peek() const {
    return text_[pos_];
  }

  void skip_ws() {
    while (pos_ < text_.size()) {
      auto c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
        return;
      ++pos_;
    }
  }

  bool parse_literal(const char* word, size_t len) {
    if (text_.compare(pos_, len, word) != 0) {
      auto start = pos_;
      // Point at the first byte that differs.
      size_t i = 0;
      while (pos_ + i < text_.size() && i < len && text_[pos_ + i] == word[i])
        ++i;
      return fail(start + i,
                  std::string{"invalid literal (expected '"} + word + "')");
    }
    pos_ += len;
    return true;
  }

  // -- values -----------------------------------------------------------------

  bool parse_value(value& out, size_t depth) {
    if (at_end())
      return fail(pos_, "unexpected end of input, expected a value");
    switch (peek()) {
      case '{': return parse_object(out, depth);
      case '[': return parse_array(out, depth);
      case '"': out.kind_ = kind::string; return parse_string(out.string_);
      case 't':
        out.kind_ = kind::boolean;
        out.bool_ = true;
        return parse_literal("true", 4);
      case 'f': out.kind_ = kind::boolean; return parse_literal("false", 5);
      case 'n': return parse_literal("null", 4);
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9'))
          return parse_number(out);
        return fail_unexpected(pos_, "a value");
    }
  }

  bool enter(size_t depth) {
    if (depth > max_depth)
      return fail(pos_, "nesting deeper than " + std::to_string(max_depth)
                          + " levels");
    return true;
  }

  bool parse_array(value& out, size_t depth) {
    if (!enter(depth))
      return false;
    out.kind_ = kind::array;
    ++pos_; // '['
    skip_ws();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      out.array_.emplace_back();
      if (!parse_value(out.array_.back(), depth + 1))
        return false;
      skip_ws();
      if (at_end())
        return fail(pos_, "unexpected end of input, expected ',' or ']'");
      if (peek() == ',') {
        ++pos_;
        skip_ws();
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return true;
      }
      return fail_unexpected(pos_, "',' or ']'");
    }
  }

  bool parse_object(value& out, size_t depth) {
    if (!enter(depth))
      return false;
    out.kind_ = kind::object;
    ++pos_; // '{'
    skip_ws();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return true;
    }
    std::vector<size_t> key_offsets;
    for (;;) {
      if (at_end())
        return fail(pos_, "unexpected end of input, expected a string key");
      if (peek() != '"')
        return fail_unexpected(pos_, "a string key");
      key_offsets.push_back(pos_);
      out.object_.emplace_back();
      auto& entry = out.object_.back();
      if (!parse_string(entry.key))
        return false;
      skip_ws();
      if (at_end())
        return fail(pos_, "unexpected end of input, expected ':'");
      if (peek() != ':')
        return fail_unexpected(pos_, "':' after an object key");
      ++pos_;
      skip_ws();
      if (!parse_value(entry.val, depth + 1))
        return false;
      skip_ws();
      if (at_end())
        return fail(pos_, "unexpected end of input, expected ',' or '}'");
      if (peek() == ',') {
        ++pos_;
        skip_ws();
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        break;
      }
      return fail_unexpected(pos_, "',' or '}'");
    }
    return check_unique_keys(out.object_, key_offsets);
  }

  /// Rejects duplicate keys: RFC 8259 leaves their meaning open, and a
  /// safetensors header with two entries for one tensor must not silently pick
  /// one. Sorting keeps this O(n log n).
  bool check_unique_keys(const std::vector<member>& entries,
                         const std::vector<size_t>& offsets) {
    if (entries.size() < 2)
      return true;
    std::vector<size_t> order(entries.size());
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      auto cmp = entries[a].key.compare(entries[b].key);
      return cmp < 0 || (cmp == 0 && a < b);
    });
    for (size_t i = 1; i < order.size(); ++i)
      if (entries[order[i]].key == entries[order[i - 1]].key)
        return fail(offsets[order[i]],
                    "duplicate key " + quote(entries[order[i]].key));
    return true;
  }

  // -- strings ----------------------------------------------------------------

  static int hex_digit(char c) {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  }

  /// Reads the four hex digits after "\u" at `pos_`.
  bool read_hex4(uint32_t& out) {
    if (text_.size() - pos_ < 4)
      return fail(pos_, "unexpected end of input in \\u escape");
    out = 0;
    for (size_t i = 0; i < 4; ++i) {
      auto d = hex_digit(text_[pos_ + i]);
      if (d < 0)
        return fail(pos_ + i, "invalid \\u escape: expected 4 hex digits");
      out = out * 16 + static_cast<uint32_t>(d);
    }
    pos_ += 4;
    return true;
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  /// Parses the escape sequence whose backslash is at `pos_`.
  bool parse_escape(std::string& out) {
    auto start = pos_;
    ++pos_;
    if (at_end())
      return fail(pos_, "unexpected end of input in escape sequence");
    auto c = peek();
    ++pos_;
    switch (c) {
      case '"': out += '"'; return true;
      case '\\': out += '\\'; return true;
      case '/': out += '/'; return true;
      case 'b': out += '\b'; return true;
      case 'f': out += '\f'; return true;
      case 'n': out += '\n'; return true;
      case 'r': out += '\r'; return true;
      case 't': out += '\t'; return true;
      case 'u': break;
      default:
        return fail(start,
                    "invalid escape sequence '\\" + std::string(1, c) + "'");
    }
    uint32_t cp = 0;
    if (!read_hex4(cp))
      return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
      return fail(start, "invalid \\u escape: lone low surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (text_.compare(pos_, 2, "\\u") != 0)
        return fail(
          start, "invalid \\u escape: high surrogate without a low surrogate");
      auto low_start = pos_;
      pos_ += 2;
      uint32_t low = 0;
      if (!read_hex4(low))
        return false;
      if (low < 0xDC00 || low > 0xDFFF)
        return fail(
          low_start,
          "invalid \\u escape: high surrogate without a low surrogate");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(out, cp);
    return true;
  }

  /// Validates the UTF-8 sequence starting at `pos_` (lead byte >= 0x80) and
  /// appends it.
  bool parse_utf8(std::string& out) {
    auto b = [&](size_t i) {
      return static_cast<unsigned char>(text_[pos_ + i]);
    };
    auto lead = b(0);
    size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      len = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      len = 3;
      if (lead == 0xE0)
        lo = 0xA0; // no overlong forms
      else if (lead == 0xED)
        hi = 0x9F; // no encoded surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      len = 4;
      if (lead == 0xF0)
        lo = 0x90;
      else if (lead == 0xF4)
        hi = 0x8F; // nothing above U+10FFFF
    } else {
      return fail(pos_, "invalid UTF-8 lead byte");
    }
    if (text_.size() - pos_ < len)
      return fail(pos_, "truncated UTF-8 sequence");
    for (size_t i = 1; i < len; ++i) {
      auto c = b(i);
      auto min = i == 1 ? lo : static_cast<unsigned char>(0x80);
      auto max = i == 1 ? hi : static_cast<unsigned char>(0xBF);
      if (c < min || c > max)
        return fail(pos_ + i, "invalid UTF-8 sequence");
    }
    out.append(text_.data() + pos_, len);
    pos_ += len;
    return true;
  }

  bool parse_string(std::string& out) {
    auto open = pos_;
    ++pos_; // '"'
    for (;;) {
      // Copy runs of plain ASCII in one go; reference.json is mostly such runs.
      auto run = pos_;
      while (run < text_.size()) {
        auto c = static_cast<unsigned char>(text_[run]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
          break;
        ++run;
      }
      out.append(text_.data() + pos_, run - pos_);
      pos_ = run;
      if (at_end())
        return fail(open, "unterminated string");
      auto c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        if (!parse_escape(out))
          return false;
      } else if (c < 0x20) {
        return fail(pos_, "unescaped control character in string");
      } else if (!parse_utf8(out)) {
        return false;
      }
    }
  }

  // -- numbers ----------------------------------------------------------------

  static bool is_digit(char c) {
    return c >= '0' && c <= '9';
  }

  bool parse_number(value& out) {
    auto start = pos_;
    auto n = text_.size();
    if (text_[pos_] == '-')
      ++pos_;
    if (pos_ == n || !is_digit(text_[pos_]))
      return fail(pos_, "invalid number: expected a digit");
    auto int_begin = pos_;
    if (text_[pos_] == '0') {
      ++pos_;
      if (pos_ < n && is_digit(text_[pos_]))
        return fail(pos_, "invalid number: leading zero");
    } else {
      while (pos_ < n && is_digit(text_[pos_]))
        ++pos_;
    }
    auto int_end = pos_;
    auto frac_begin = pos_;
    auto frac_end = pos_;
    bool integer_literal = true;
    if (pos_ < n && text_[pos_] == '.') {
      integer_literal = false;
      ++pos_;
      frac_begin = pos_;
      if (pos_ == n || !is_digit(text_[pos_]))
        return fail(pos_, "invalid number: expected a digit after '.'");
      while (pos_ < n && is_digit(text_[pos_]))
        ++pos_;
      frac_end = pos_;
    }
    int64_t exponent = 0;
    if (pos_ < n && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      integer_literal = false;
      ++pos_;
      bool negative = false;
      if (pos_ < n && (text_[pos_] == '+' || text_[pos_] == '-'))
        negative = text_[pos_++] == '-';
      if (pos_ == n || !is_digit(text_[pos_]))
        return fail(pos_, "invalid number: expected a digit in the exponent");
      while (pos_ < n && is_digit(text_[pos_])) {
        if (exponent < 1000000) // saturate; only the sign of the magnitude
                                // matters beyond this
          exponent = exponent * 10 + (text_[pos_] - '0');
        ++pos_;
      }
      if (negative)
        exponent = -exponent;
    }
    auto first = text_.data() + start;
    auto last = text_.data() + pos_;
    out.kind_ = kind::number;
    double d = 0;
    auto res = std::from_chars(first, last, d);
    if (res.ec == std::errc::result_out_of_range) {
      if (!underflows(int_begin, int_end, frac_begin, frac_end, exponent))
        return fail(start, "number out of range: " + std::string(first, last));
      d = text_[start] == '-' ? -0.0 : 0.0;
    } else if (res.ec != std::errc{} || res.ptr != last) {
      return fail(
        start, "invalid number"); // unreachable after the grammar check above
    }
    out.number_ = d;
    if (integer_literal) {
      int64_t i = 0;
      auto ires = std::from_chars(first, last, i);
      if (ires.ec == std::errc{} && ires.ptr == last) {
        out.integral_ = true;
        out.int_ = i;
        return true;
      }
    }
    out.integral_ = exact_int64(d, out.int_);
    return true;
  }

  /// Tells whether an out-of-range literal is tiny (rounds to zero) rather than
  /// huge.
  bool underflows(size_t int_begin, size_t int_end, size_t frac_begin,
                  size_t frac_end, int64_t exponent) const {
    // Decimal exponent of the leading non-zero digit.
    for (size_t i = int_begin; i < int_end; ++i)
      if (text_[i] != '0')
        return static_cast<int64_t>(int_end - i - 1) + exponent < 0;
    for (size_t i = frac_begin; i < frac_end; ++i)
      if (text_[i] != '0')
        return -static_cast<int64_t>(i - frac_begin + 1) + exponent < 0;
    return true;
  }

  std::string_view text_;
  const std::string& source_;
  size_t pos_ = 0;
  caf::error err_;
};

caf::expected<value> parse(std::string_view text,
                           const std::string& source_name) {
  parser p{text, source_name};
  return p.run();
}

caf::expected<value> parse_file(const std::string& path) {
  auto text = read_text_file(path);
  if (!text)
    return text.error();
  return parse(*text, path);
}

// -- output -------------------------------------------------------------------

std::string quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (auto ch : text) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

namespace {

void render(const value& x, std::string& out) {
  switch (x.type()) {
    case kind::null: out += "null"; return;
    case kind::boolean: out += x.as_bool() ? "true" : "false"; return;
    case kind::number: {
      if (x.is_int64()) {
        out += std::to_string(x.as_int64());
        return;
      }
      auto d = x.as_double();
      if (!std::isfinite(d)) {
        out += "null"; // JSON has no inf or nan
        return;
      }
      char buf[32];
      auto res = std::to_chars(buf, buf + sizeof(buf), d);
      out.append(buf, res.ptr);
      return;
    }
    case kind::string: out += quote(x.as_string()); return;
    case kind::array: {
      out += '[';
      bool first = true;
      for (auto& y : x.as_array()) {
        if (!first)
          out += ',';
        first = false;
        render(y, out);
      }
      out += ']';
      return;
    }
    case kind::object: {
      out += '{';
      bool first = true;
      for (auto& m : x.as_object()) {
        if (!first)
          out += ',';
        first = false;
        out += quote(m.key);
        out += ':';
        render(m.val, out);
      }
      out += '}';
      return;
    }
  }
}

} // namespace

std::string to_json(const value& x) {
  std::string out;
  render(x, out);
  return out;
}

} // namespace volt::json
