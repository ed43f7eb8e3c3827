#include "model/json.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <memory>
#include <unordered_set>
#include <vector>

#include "base/error.hpp"
#include "model/file_io.hpp"

namespace volt::json {

namespace {

/// A char iterator that records how far nlohmann's lexer has read: SAX
/// callbacks get no position, and the depth and duplicate-key errors they
/// raise should still name a line and column.
class tracking_iterator {
public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  tracking_iterator(const char* at, const char** read) : at_(at), read_(read) {}

  reference operator*() const {
    return *at_;
  }

  tracking_iterator& operator++() {
    *read_ = ++at_;
    return *this;
  }

  tracking_iterator operator++(int) {
    auto old = *this;
    ++*this;
    return old;
  }

  bool operator==(const tracking_iterator& other) const {
    return at_ == other.at_;
  }

  bool operator!=(const tracking_iterator& other) const {
    return at_ != other.at_;
  }

private:
  const char* at_;
  const char** read_;
};

/// Quotes bytes for an error message: printable ASCII as is, anything else as
/// \xNN, at most the last 40 bytes (a lexer token can be megabytes long).
std::string printable(std::string_view bytes) {
  std::string out;
  if (bytes.size() > 40) {
    out = "...";
    bytes = bytes.substr(bytes.size() - 40);
  }
  for (auto ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out += ch;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    }
  }
  return out;
}

/// `key` as a JSON string for an error message: ASCII only, cut after 40
/// bytes.
std::string quote_key(const std::string& key) {
  auto shown = key.size() > 40 ? key.substr(0, 40) + "..." : key;
  return value(shown).dump(-1, ' ', true, value::error_handler_t::replace);
}

/// Builds an ordered_json from SAX events (nlohmann's parser loop keeps its
/// own explicit stack, so nothing here recurses), refusing too deep nesting
/// and duplicate keys as they appear.
class builder {
public:
  builder(std::string_view text, const std::string& source)
    : text_(text), source_(source), read_(text.data()) {}

  caf::expected<value> run() {
    auto begin = tracking_iterator{text_.data(), &read_};
    auto end = tracking_iterator{text_.data() + text_.size(), &read_};
    if (!value::sax_parse(begin, end, this) && !err_)
      fail(consumed(), "invalid JSON"); // every refusal sets err_ first
    if (err_)
      return std::move(err_);
    return std::move(root_);
  }

  // -- nlohmann SAX interface -------------------------------------------------

  bool null() {
    return add(value{});
  }

  bool boolean(bool x) {
    return add(value(x));
  }

  bool number_integer(value::number_integer_t x) {
    return add(value(x));
  }

  bool number_unsigned(value::number_unsigned_t x) {
    return add(value(x));
  }

  bool number_float(value::number_float_t x, const value::string_t&) {
    return add(value(x));
  }

  bool string(value::string_t& x) {
    return add(value(std::move(x)));
  }

  bool binary(value::binary_t&) {
    return false; // the JSON text parser never produces binary values
  }

  bool start_object(size_t) {
    return open(value::object());
  }

  bool key(value::string_t& x) {
    auto& top = stack_.back();
    auto& members = top.v->get_ref<value::object_t&>();
    // Past a few dozen members a hash set beats the linear scan.
    if (!top.keys && members.size() >= 32) {
      top.keys = std::make_unique<std::unordered_set<std::string>>();
      for (auto& m : members)
        top.keys->insert(m.first);
    }
    bool duplicate = false;
    if (top.keys)
      duplicate = !top.keys->insert(x).second;
    else
      for (auto& m : members)
        duplicate = duplicate || m.first == x;
    if (duplicate)
      return fail(key_start(), "duplicate key " + quote_key(x));
    key_ = std::move(x);
    return true;
  }

  bool end_object() {
    stack_.pop_back();
    return true;
  }

  bool start_array(size_t) {
    return open(value::array());
  }

  bool end_array() {
    stack_.pop_back();
    return true;
  }

  bool parse_error(size_t position, const std::string& last_token,
                   const nlohmann::detail::exception& ex) {
    // nlohmann's text is "[json.exception.<id>] parse error at line L, column
    // C: <what>"; we keep <what> and put our own position in front.
    std::string what = ex.what();
    auto cut = what.find(": ");
    if (cut != std::string::npos && what.rfind("[json.exception.parse", 0) == 0)
      what.erase(0, cut + 2);
    else if (auto bracket = what.find("] "); bracket != std::string::npos)
      what.erase(0, bracket + 2);
    if (!last_token.empty()) {
      auto quoted = "'" + last_token + "'";
      if (auto at = what.find(quoted); at != std::string::npos)
        what.replace(at, quoted.size(), "'" + printable(last_token) + "'");
    }
    // `position` counts the bytes read, the offending one included.
    return fail(position > 0 ? position - 1 : 0, what);
  }

private:
  struct open_value {
    value* v;
    /// Keys of a large object, for the duplicate check.
    std::unique_ptr<std::unordered_set<std::string>> keys;
  };

  /// Bytes the lexer has taken so far.
  size_t consumed() const {
    return static_cast<size_t>(read_ - text_.data());
  }

  /// Where the key just read opens: the last unescaped quote before its
  /// closing one.
  size_t key_start() const {
    auto close = consumed() - 1;
    for (auto i = close; i-- > 0;) {
      if (text_[i] != '"')
        continue;
      size_t slashes = 0;
      while (slashes < i && text_[i - 1 - slashes] == '\\')
        ++slashes;
      if (slashes % 2 == 0)
        return i;
    }
    return close;
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
    err_ = make_volt_error(volt_errc::invalid_checkpoint,
                           source_ + ":" + std::to_string(line) + ":"
                             + std::to_string(at - line_start + 1) + ": "
                             + what + " (byte " + std::to_string(at) + ")");
    return false;
  }

  /// Places `x` at the current position: root, next element, or the value of
  /// the key just read.
  value* place(value&& x) {
    if (stack_.empty()) {
      root_ = std::move(x);
      return &root_;
    }
    auto& top = *stack_.back().v;
    if (top.is_array()) {
      auto& elements = top.get_ref<value::array_t&>();
      elements.push_back(std::move(x));
      return &elements.back();
    }
    // key() has ruled out duplicates, so skip ordered_map's linear search
    // (quadratic over a large header).
    auto& members = top.get_ref<value::object_t&>();
    static_cast<value::object_t::Container&>(members).emplace_back(
      std::move(key_), std::move(x));
    return &members.back().second;
  }

  bool add(value&& x) {
    place(std::move(x));
    return true;
  }

  bool open(value&& x) {
    if (stack_.size() >= max_depth)
      return fail(consumed() - 1, "nesting deeper than "
                                    + std::to_string(max_depth) + " levels");
    stack_.push_back(open_value{place(std::move(x)), nullptr});
    return true;
  }

  std::string_view text_;
  const std::string& source_;
  const char* read_;
  value root_;
  std::vector<open_value> stack_;
  std::string key_;
  caf::error err_;
};

} // namespace

caf::expected<value> parse(std::string_view text,
                           const std::string& source_name) {
  return builder{text, source_name}.run();
}

caf::expected<value> parse_file(const std::string& path) {
  auto text = read_text_file(path);
  if (!text)
    return text.error();
  return parse(*text, path);
}

const value* find(const value& x, std::string_view key) {
  if (!x.is_object())
    return nullptr;
  auto i = x.find(key);
  return i == x.end() ? nullptr : &*i;
}

std::optional<int64_t> to_int64(const value& x) {
  if (x.is_number_integer() && !x.is_number_unsigned())
    return x.get<int64_t>();
  if (x.is_number_unsigned()) {
    auto u = x.get<uint64_t>();
    if (u <= static_cast<uint64_t>(INT64_MAX))
      return static_cast<int64_t>(u);
    return std::nullopt;
  }
  if (!x.is_number_float())
    return std::nullopt;
  auto d = x.get<double>();
  // 2^63 itself is outside int64_t.
  if (!std::isfinite(d) || std::trunc(d) != d || d < -9223372036854775808.0
      || d >= 9223372036854775808.0)
    return std::nullopt;
  return static_cast<int64_t>(d);
}

std::string dump(const value& x) {
  return x.dump(-1, ' ', false, value::error_handler_t::replace);
}

double rounded(double x, int decimals) {
  if (!std::isfinite(x))
    return x;
  auto scale = std::pow(10.0, decimals);
  return std::round(x * scale) / scale;
}

double shortest(float x) {
  if (!std::isfinite(x))
    return x;
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof(buf), x);
  double out = 0;
  std::from_chars(buf, res.ptr, out);
  return out;
}

} // namespace volt::json
