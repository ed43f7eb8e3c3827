#define CAF_SUITE model.json

// Our layer over nlohmann::json: the bounded parse that every file and record
// from outside goes through (depth, duplicate keys, one-line errors naming the
// source), the typed field access, and the output helpers.

#include "model/json.hpp"

#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "base/error.hpp"
#include "tests/model/checkpoint_writer.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

json::value parse_ok(const std::string& text) {
  auto x = json::parse(text, "t.json");
  if (!x) {
    CAF_FAIL("unexpected error for " << text << ": " << describe(x.error()));
  }
  return std::move(*x);
}

/// Parses `text`, expecting one short line "t.json:<where>: ...<what>...".
void expect_error(const std::string& text, const std::string& where,
                  const std::string& what) {
  auto x = json::parse(text, "t.json");
  if (x) {
    CAF_ERROR("no error for: " << text.substr(0, 80));
    return;
  }
  auto msg = describe(x.error());
  CAF_CHECK(x.error() == volt_errc::invalid_checkpoint);
  CAF_CHECK(msg.find('\n') == std::string::npos);
  CAF_CHECK_LESS(msg.size(), 300u);
  if (msg.rfind("t.json:" + where + ": ", 0) != 0
      || msg.find(what) == std::string::npos)
    CAF_ERROR("for " << text.substr(0, 80) << " expected 't.json:" << where
                     << ": ..." << what << "...', got: " << msg);
}

/// The integer `text` holds; fails the test if it holds none.
int64_t int_of(const std::string& text) {
  auto n = json::to_int64(parse_ok(text));
  if (!n) {
    CAF_FAIL(text << " holds no int64");
  }
  return *n;
}

std::string nest(size_t depth, const std::string& open,
                 const std::string& close) {
  std::string s;
  for (size_t i = 0; i < depth; ++i)
    s += open;
  s += "1";
  for (size_t i = 0; i < depth; ++i)
    s += close;
  return s;
}

} // namespace

CAF_TEST(scalars and typed access) {
  CAF_CHECK(parse_ok("null").is_null());
  CAF_CHECK(parse_ok(" true ").get<bool>());
  CAF_CHECK(parse_ok("\"hi\"").get<std::string>() == "hi");
  CAF_CHECK_EQUAL(int_of("\t\r\n 42 \n"), 42);
  CAF_CHECK_EQUAL(int_of("-7"), -7);
  // Integral floats count as integers: Python's json module writes a float
  // that holds a whole number with a trailing ".0".
  CAF_CHECK_EQUAL(int_of("1000000.0"), 1000000);
  CAF_CHECK_EQUAL(int_of("1e3"), 1000);
  CAF_CHECK(!json::to_int64(parse_ok("1.5")));
  CAF_CHECK(!json::to_int64(parse_ok("\"3\"")));
  CAF_CHECK(!json::to_int64(parse_ok("true")));
  CAF_CHECK(!json::to_int64(parse_ok("null")));
  CAF_CHECK_EQUAL(parse_ok("-2.5e-3").get<double>(), -2.5e-3);
  CAF_CHECK_EQUAL(parse_ok("1e-05").get<double>(), 1e-5);
}

CAF_TEST(huge numbers) {
  // Integer literals stay exact to the ends of int64 (beyond 2^53).
  CAF_CHECK_EQUAL(int_of("9007199254740993"),
                  9007199254740993LL);
  CAF_CHECK_EQUAL(int_of("9223372036854775807"), INT64_MAX);
  CAF_CHECK_EQUAL(int_of("-9223372036854775808"), INT64_MIN);
  // Past them they are numbers, but no int64: a size check cannot wrap.
  CAF_CHECK(!json::to_int64(parse_ok("9223372036854775808")));
  CAF_CHECK(!json::to_int64(parse_ok("18446744073709551615")));
  CAF_CHECK(!json::to_int64(parse_ok("18446744073709551616")));
  CAF_CHECK(!json::to_int64(parse_ok("1e300")));
  CAF_CHECK(parse_ok("18446744073709551616").is_number());
  // Underflow rounds to zero; overflow is an error naming the literal, cut
  // short when it is long.
  CAF_CHECK_EQUAL(parse_ok("1e-400").get<double>(), 0.0);
  expect_error("[1e400]", "1:6", "number overflow parsing '1e400'");
  expect_error("-1e400", "1:6", "number overflow");
  expect_error(std::string(100000, '9'), "1:100000",
               "number overflow parsing '...9999");
}

CAF_TEST(objects keep document order) {
  auto x = parse_ok(
    R"({"b": [1, 2.5, "x", null, true, {}, []], "a": {"c": -1}, "": 0})");
  CAF_REQUIRE(x.is_object());
  std::vector<std::string> keys;
  for (auto& [key, val] : x.items())
    keys.push_back(key);
  CAF_CHECK_EQUAL(keys, std::vector<std::string>({"b", "a", ""}));
  auto b = json::find(x, "b");
  CAF_REQUIRE(b && b->is_array());
  CAF_CHECK_EQUAL(b->size(), 7u);
  CAF_CHECK((*b)[3].is_null());
  CAF_CHECK_EQUAL(json::dump(*json::find(*json::find(x, "a"), "c")), "-1");
  CAF_CHECK(json::find(x, "missing") == nullptr);
  CAF_CHECK(json::find(*b, "b") == nullptr); // not an object
  CAF_CHECK_EQUAL(json::dump(x),
                  R"({"b":[1,2.5,"x",null,true,{},[]],"a":{"c":-1},"":0})");
}

CAF_TEST(string escapes and unicode) {
  auto str = [](const std::string& text) {
    return parse_ok(text).get<std::string>();
  };
  CAF_CHECK_EQUAL(str(R"("a\"b\\c\/d\be\ff\ng\rh\ti")"),
                  "a\"b\\c/d\be\ff\ng\rh\ti");
  CAF_CHECK_EQUAL(str(R"("\u0041\u00e9\u20AC")"), "A\xC3\xA9\xE2\x82\xAC");
  CAF_CHECK_EQUAL(str(R"("\ud83d\ude00")"), "\xF0\x9F\x98\x80");
  CAF_CHECK_EQUAL(str(R"("a\u0000b")").size(), 3u);
  CAF_CHECK_EQUAL(str("\"\xC3\xA9\xF0\x9F\x98\x80\""),
                  "\xC3\xA9\xF0\x9F\x98\x80");
  // A byte-order mark before the document is skipped (RFC 8259 allows it).
  CAF_CHECK(parse_ok("\xEF\xBB\xBF{}").is_object());
}

CAF_TEST(syntax errors name line and column) {
  expect_error("", "1:1", "unexpected end of input");
  expect_error("1 2", "1:3", "expected end of input");
  expect_error("[1,]", "1:4", "unexpected ']'");
  expect_error("[1 2]", "1:4", "expected ']'");
  expect_error(R"({"a":1,})", "1:8", "expected string literal");
  expect_error(R"({"a" 1})", "1:6", "expected ':'");
  expect_error("{\n  \"a\": tru\n}", "2:11", "invalid literal");
  expect_error("NaN", "1:1", "invalid literal");
  expect_error("// c\n1", "1:1", "invalid literal");
  expect_error("01", "1:2", "expected end of input");
  expect_error("1.", "1:3", "expected digit after '.'");
  expect_error("\"\\x\"", "1:3", "forbidden character after backslash");
  expect_error(R"("\ud800")", "1:8", "surrogate U+D800..U+DBFF");
  expect_error("\"a\nb\"", "1:3", "control character U+000A (LF)");
}

CAF_TEST(invalid utf-8 is refused and never echoed raw) {
  for (auto bad : {"\"\xC0\x80\"", "\"\xE0\x80\x80\"", "\"\xED\xA0\x80\"",
                   "\"\xF4\x90\x80\x80\"", "\"\xF5\x80\x80\x80\"", "\"\x80\"",
                   "\"\xE2\x82\"", "{\"k\xFF\": 1}"}) {
    auto x = json::parse(bad, "t.json");
    CAF_REQUIRE(!x);
    auto msg = describe(x.error());
    CAF_CHECK_NOT_EQUAL(msg.find("ill-formed UTF-8 byte"), std::string::npos);
    for (auto c : msg)
      CAF_CHECK(static_cast<unsigned char>(c) < 0x80);
  }
  expect_error("\"\xE2\x82\"", "1:4", "last read: '\"\\xE2\\x82\"'");
}

CAF_TEST(duplicate keys are refused at the second one) {
  expect_error(R"({"a":1,"b":2,"a":3})", "1:14", "duplicate key \"a\"");
  expect_error("{\"x\": {\"a\\\"b\": 1,\n \"a\\\"b\": 2}}", "2:2",
               "duplicate key \"a\\\"b\"");
  // Large objects switch to a hash set; the check still holds past the switch.
  std::string big = "{";
  for (int i = 0; i < 1000; ++i)
    big += "\"k" + std::to_string(i) + "\": " + std::to_string(i) + ",";
  CAF_CHECK_EQUAL(parse_ok(big + "\"last\": 0}").size(), 1001u);
  expect_error(big + "\"k999\": 0}", "1:" + std::to_string(big.size() + 1),
               "duplicate key \"k999\"");
  expect_error(big + "\"k0\": 0}", "1:" + std::to_string(big.size() + 1),
               "duplicate key \"k0\"");
  // The same key in two objects is fine.
  CAF_CHECK(json::parse(R"([{"a":1},{"a":2}])", "t.json"));
}

CAF_TEST(deep nesting is refused before it gets deep) {
  CAF_CHECK(json::parse(nest(json::max_depth, "[", "]"), "t.json"));
  expect_error(nest(json::max_depth + 1, "[", "]"), "1:257",
               "nesting deeper than 256 levels");
  CAF_CHECK(json::parse(nest(json::max_depth, "{\"a\":", "}"), "t.json"));
  expect_error(nest(json::max_depth + 1, "{\"a\":", "}"), "1:1281",
               "nesting deeper than 256");
  expect_error(nest(10000, "[", "]"), "1:257", "nesting deeper than 256");
  expect_error(nest(10000, "[{\"a\":", "}]"), "1:769", "nesting deeper than 256");
  // A megabyte of brackets fails at the limit, without reading on.
  auto start = std::chrono::steady_clock::now();
  expect_error(std::string(1000000, '['), "1:257",
               "nesting deeper than 256 levels");
  auto ms = std::chrono::duration<double, std::milli>(
    std::chrono::steady_clock::now() - start);
  CAF_CHECK_LESS(ms.count(), 1000.0);
}

CAF_TEST(truncated input names the file) {
  auto text = test::read_text(test::tiny_mixtral_dir() + "/config.json");
  for (size_t n = 0; n < text.size(); ++n) {
    auto x = json::parse(text.substr(0, n), "c.json");
    CAF_REQUIRE(!x);
    auto msg = describe(x.error());
    if (msg.rfind("c.json:", 0) != 0 || msg.find('\n') != std::string::npos)
      CAF_ERROR("bad message at " << n << ": " << msg);
  }
  expect_error("{\"vocab_size\": 320,", "1:20",
               "unexpected end of input; expected string literal");
  // A long unterminated string: the message quotes only its end.
  expect_error("\"" + std::string(1 << 20, 'x'), "1:1048578",
               "missing closing quote; last read: '...xxxx");
}

CAF_TEST(parse_file errors name the file) {
  auto missing = json::parse_file("/nonexistent/x.json");
  CAF_REQUIRE(!missing);
  CAF_CHECK_EQUAL(describe(missing.error()),
                  "/nonexistent/x.json: file does not exist");
  auto dir = json::parse_file(VOLT_TEST_DATA_DIR);
  CAF_REQUIRE(!dir);
  CAF_CHECK(describe(dir.error()).find("is a directory") != std::string::npos);
  test::temp_dir tmp;
  test::write_text(tmp.file("bad.json"), "{\n\"a\": 1,\n}");
  auto bad = json::parse_file(tmp.file("bad.json"));
  CAF_REQUIRE(!bad);
  CAF_CHECK_EQUAL(describe(bad.error()),
                  tmp.file("bad.json")
                    + ":3:1: syntax error while parsing object key - "
                      "unexpected '}'; expected string literal (byte 10)");
}

CAF_TEST(output helpers) {
  // JSON has no NaN or infinity: they print as null.
  json::value x = {{"nan", std::nan("")},
                   {"inf", std::numeric_limits<double>::infinity()},
                   {"f", json::shortest(0.1f)},
                   {"t", json::rounded(1.23456789, 3)},
                   {"n", json::rounded(std::nan(""), 3)}};
  CAF_CHECK_EQUAL(json::dump(x),
                  R"({"nan":null,"inf":null,"f":0.1,"t":1.235,"n":null})");
  // Bytes that are not UTF-8 print as U+FFFD instead of throwing.
  CAF_CHECK_EQUAL(json::dump(json::value("a\xFF")), "\"a\xEF\xBF\xBD\"");
  CAF_CHECK_EQUAL(json::dump(json::value("q\"\n\x01")), R"("q\"\n\u0001")");
  // Shortest float32 text reads back as the same float.
  for (float f : {0.1f, -0.219282f, 3.4028235e38f, 1e-45f, 123456.789f})
    CAF_CHECK_EQUAL(static_cast<float>(json::shortest(f)), f);
  CAF_CHECK(std::isnan(json::shortest(std::nanf(""))));
  auto round_trip = parse_ok(json::dump(x));
  CAF_CHECK_EQUAL(round_trip.at("f").get<double>(), 0.1);
}

CAF_TEST(the fixture reference.json) {
  auto start = std::chrono::steady_clock::now();
  auto x = json::parse_file(test::tiny_mixtral_dir() + "/reference.json");
  auto ms = std::chrono::duration<double, std::milli>(
    std::chrono::steady_clock::now() - start);
  CAF_MESSAGE("reference.json parsed in " << ms.count() << " ms");
  CAF_CHECK_LESS(ms.count(), 1000.0);
  CAF_REQUIRE(x);
  CAF_CHECK_EQUAL(x->at("transformers").get<std::string>(), "5.17.0");
  auto& cases = x->at("cases");
  CAF_REQUIRE_EQUAL(cases.size(), 4u);
  CAF_CHECK_EQUAL(cases[0].at("input_ids")[0].get<int64_t>(), 203);
  CAF_CHECK_EQUAL(cases[0].at("last_logits")[0].get<double>(), -0.219282);
  CAF_CHECK_EQUAL(cases[3].at("all_logits").size(), 40u);
}

CAF_TEST(random corruption never crashes) {
  auto text = test::read_text(test::tiny_mixtral_dir() + "/config.json");
  uint64_t state = 99;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  size_t failed = 0;
  for (int round = 0; round < 5000; ++round) {
    auto bytes = text;
    if (round % 5 == 0)
      bytes.resize(next() % bytes.size());
    auto flips = 1 + next() % 3;
    for (size_t i = 0; i < flips && !bytes.empty(); ++i)
      bytes[next() % bytes.size()] = static_cast<char>(next() % 256);
    auto x = json::parse(bytes, "c.json");
    if (!x) {
      ++failed;
      auto msg = describe(x.error());
      if (msg.rfind("c.json:", 0) != 0 || msg.find('\n') != std::string::npos)
        CAF_ERROR("bad message: " << msg);
    }
  }
  CAF_CHECK_GREATER(failed, 2500u);
}
