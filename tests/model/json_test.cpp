#define CAF_SUITE model.json

#include "model/json.hpp"

#include <chrono>
#include <cmath>
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

/// Parses `text`, expecting an error whose message contains `where` and `what`.
void expect_error(const std::string& text, const std::string& where,
                  const std::string& what) {
  auto x = json::parse(text, "t.json");
  if (x) {
    CAF_ERROR("no error for: " << text);
    return;
  }
  auto msg = describe(x.error());
  CAF_CHECK(x.error() == volt_errc::invalid_checkpoint);
  CAF_CHECK(msg.find('\n') == std::string::npos);
  if (msg.find("t.json:" + where + ": ") == std::string::npos
      || msg.find(what) == std::string::npos)
    CAF_ERROR("for " << text << " expected 't.json:" << where << ": ..." << what
                     << "...', got: " << msg);
}

} // namespace

CAF_TEST(scalars) {
  CAF_CHECK(parse_ok("null").is_null());
  CAF_CHECK(parse_ok(" true ").as_bool());
  CAF_CHECK(parse_ok("false").is_bool());
  CAF_CHECK(!parse_ok("false").as_bool());
  CAF_CHECK(parse_ok("\"hi\"").as_string() == "hi");
  CAF_CHECK_EQUAL(parse_ok("\t\r\n 42 \n").as_int64(), 42);
  CAF_CHECK_EQUAL(parse_ok("-7").as_int64(), -7);
  CAF_CHECK_EQUAL(parse_ok("0").as_int64(), 0);
  auto neg_zero = parse_ok("-0");
  CAF_CHECK(neg_zero.is_int64() && neg_zero.as_int64() == 0);
  CAF_CHECK(std::signbit(neg_zero.as_double()));
}

CAF_TEST(numbers) {
  auto x = parse_ok("1.5");
  CAF_CHECK(x.is_number() && !x.is_int64());
  CAF_CHECK_EQUAL(x.as_double(), 1.5);
  CAF_CHECK_EQUAL(x.as_int64(), 0);
  CAF_CHECK_EQUAL(parse_ok("0.1").as_double(), 0.1);
  CAF_CHECK_EQUAL(parse_ok("-2.5e-3").as_double(), -2.5e-3);
  CAF_CHECK_EQUAL(parse_ok("1E+2").as_double(), 100.0);
  // Integral values written with a fraction or exponent are integers too.
  CAF_CHECK_EQUAL(parse_ok("1000000.0").as_int64(), 1000000);
  CAF_CHECK_EQUAL(parse_ok("1e3").as_int64(), 1000);
  CAF_CHECK_EQUAL(parse_ok("1e-05").as_double(), 1e-5);
  // Integer literals stay exact beyond 2^53.
  CAF_CHECK_EQUAL(parse_ok("9007199254740993").as_int64(), 9007199254740993LL);
  CAF_CHECK_EQUAL(parse_ok("9223372036854775807").as_int64(), INT64_MAX);
  CAF_CHECK_EQUAL(parse_ok("-9223372036854775808").as_int64(), INT64_MIN);
  auto big = parse_ok("9223372036854775808");
  CAF_CHECK(big.is_number() && !big.is_int64());
  CAF_CHECK_EQUAL(big.as_double(), 9223372036854775808.0);
  CAF_CHECK(!parse_ok("1e300").is_int64());
  // Underflow rounds to zero; overflow is an error (below).
  CAF_CHECK_EQUAL(parse_ok("1e-400").as_double(), 0.0);
  CAF_CHECK_EQUAL(parse_ok("0.000000001e-400").as_double(), 0.0);
  CAF_CHECK_EQUAL(parse_ok("4.9e-324").as_double(), 4.9e-324);
}

CAF_TEST(arrays and objects) {
  auto x = parse_ok(
    R"({"b": [1, 2.5, "x", null, true, {}, []], "a": {"c": -1}, "": 0})");
  CAF_REQUIRE(x.is_object());
  CAF_CHECK_EQUAL(x.size(), 3u);
  auto& entries = x.as_object();
  CAF_CHECK_EQUAL(entries[0].key, "b");
  CAF_CHECK_EQUAL(entries[1].key, "a");
  CAF_CHECK_EQUAL(entries[2].key, "");
  auto b = x.find("b");
  CAF_REQUIRE(b && b->is_array());
  CAF_CHECK_EQUAL(b->size(), 7u);
  CAF_CHECK_EQUAL(b->as_array()[0].as_int64(), 1);
  CAF_CHECK_EQUAL((*b)[2].as_string(), "x");
  CAF_CHECK((*b)[3].is_null());
  CAF_CHECK((*b)[5].is_object() && (*b)[5].size() == 0);
  CAF_CHECK((*b)[6].is_array() && (*b)[6].size() == 0);
  CAF_CHECK_EQUAL(x.find("a")->find("c")->as_int64(), -1);
  CAF_CHECK(x.find("missing") == nullptr);
  CAF_CHECK(b->find("b") == nullptr); // not an object
  CAF_CHECK(parse_ok("[]").as_array().empty());
  CAF_CHECK(parse_ok("{}").as_object().empty());
  // Wrong-kind accessors return empty defaults.
  CAF_CHECK(x.as_array().empty());
  CAF_CHECK(x.as_string().empty());
  CAF_CHECK_EQUAL(x.as_double(), 0.0);
}

CAF_TEST(string escapes and unicode) {
  // as_string() returns a reference into the value, so keep the value alive.
  auto str = [](const std::string& text) { return parse_ok(text).as_string(); };
  CAF_CHECK_EQUAL(str(R"("a\"b\\c\/d\be\ff\ng\rh\ti")"),
                  "a\"b\\c/d\be\ff\ng\rh\ti");
  CAF_CHECK_EQUAL(str(R"("\u0041\u00e9\u20AC")"), "A\xC3\xA9\xE2\x82\xAC");
  // A surrogate pair becomes one 4-byte UTF-8 sequence (U+1F600).
  CAF_CHECK_EQUAL(str(R"("\ud83d\ude00")"), "\xF0\x9F\x98\x80");
  CAF_CHECK_EQUAL(str(R"("\uDBFF\uDFFF")"), "\xF4\x8F\xBF\xBF");
  auto nul = str(R"("a\u0000b")");
  CAF_CHECK_EQUAL(nul.size(), 3u);
  CAF_CHECK_EQUAL(nul[1], '\0');
  // Raw UTF-8 passes through unchanged.
  CAF_CHECK_EQUAL(str("\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\""),
                  "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  auto keyed = parse_ok(R"({"caf\u00e9": 1})");
  CAF_CHECK(keyed.find("caf\xC3\xA9") != nullptr);
}

CAF_TEST(syntax errors name line and column) {
  expect_error("", "1:1", "unexpected end of input, expected a value");
  expect_error("   ", "1:4", "unexpected end of input");
  expect_error("1 2", "1:3", "unexpected character '2' after the document");
  expect_error("[1,]", "1:4", "expected a value, got character ']'");
  expect_error("[1 2]", "1:4", "expected ',' or ']'");
  expect_error("[1", "1:3", "unexpected end of input, expected ',' or ']'");
  expect_error(R"({"a":1,})", "1:8", "expected a string key");
  expect_error("{a:1}", "1:2", "expected a string key, got character 'a'");
  expect_error(R"({"a" 1})", "1:6", "expected ':' after an object key");
  expect_error(R"({"a":1 "b":2})", "1:8", "expected ',' or '}'");
  expect_error(R"({"a":1)", "1:7",
               "unexpected end of input, expected ',' or '}'");
  expect_error("{\n  \"a\": tru\n}", "2:11",
               "invalid literal (expected 'true')");
  expect_error("nul", "1:4", "invalid literal (expected 'null')");
  expect_error("True", "1:1", "expected a value, got character 'T'");
  expect_error("NaN", "1:1", "expected a value");
  expect_error("'a'", "1:1", "expected a value");
  expect_error("// c\n1", "1:1", "expected a value");
  expect_error("\xEF\xBB\xBF{}", "1:1", "byte 0xEF");
  expect_error(R"({"a":1,"b":2,"a":3})", "1:14", "duplicate key \"a\"");
}

CAF_TEST(number errors) {
  expect_error("01", "1:2", "leading zero");
  expect_error("-", "1:2", "expected a digit");
  expect_error("-a", "1:2", "expected a digit");
  expect_error("1.", "1:3", "expected a digit after '.'");
  expect_error("1.e5", "1:3", "expected a digit after '.'");
  expect_error("1e", "1:3", "expected a digit in the exponent");
  expect_error("1e+", "1:4", "expected a digit in the exponent");
  expect_error("+1", "1:1", "expected a value");
  expect_error(".5", "1:1", "expected a value");
  expect_error("[1e400]", "1:2", "number out of range: 1e400");
  expect_error("-1e400", "1:1", "number out of range");
  expect_error("0x10", "1:2", "after the document");
}

CAF_TEST(string errors) {
  expect_error("\"abc", "1:1", "unterminated string");
  expect_error("\"a\tb\"", "1:3", "unescaped control character");
  expect_error("\"a\nb\"", "1:3", "unescaped control character");
  expect_error(R"("\x")", "1:2", "invalid escape sequence '\\x'");
  expect_error(R"("\u12G4")", "1:6",
               "invalid \\u escape: expected 4 hex digits");
  expect_error(R"("\u12)", "1:4", "unexpected end of input in \\u escape");
  expect_error(R"("\)", "1:3", "unexpected end of input in escape sequence");
  expect_error(R"("\udc00")", "1:2", "lone low surrogate");
  expect_error(R"("\ud800")", "1:2", "high surrogate without a low surrogate");
  expect_error(R"("\ud800\u0041")", "1:8",
               "high surrogate without a low surrogate");
  expect_error(R"("\ud800x")", "1:2", "high surrogate without a low surrogate");
  expect_error("\"\xC0\x80\"", "1:2",
               "invalid UTF-8 lead byte"); // overlong NUL
  expect_error("\"\xE0\x80\x80\"", "1:3", "invalid UTF-8 sequence"); // overlong
  expect_error("\"\xED\xA0\x80\"", "1:3",
               "invalid UTF-8 sequence"); // encoded surrogate
  expect_error("\"\xF4\x90\x80\x80\"", "1:3",
               "invalid UTF-8 sequence"); // above U+10FFFF
  expect_error("\"\xF5\x80\x80\x80\"", "1:2", "invalid UTF-8 lead byte");
  expect_error("\"\x80\"", "1:2",
               "invalid UTF-8 lead byte"); // lone continuation
  expect_error("\"\xE2\x82\"", "1:4",
               "invalid UTF-8 sequence"); // cut short by '"'
  expect_error("\"\xE2\x82", "1:2", "truncated UTF-8 sequence");
}

CAF_TEST(deep nesting is rejected without exhausting the stack) {
  auto nest = [](size_t depth, const std::string& open,
                 const std::string& close) {
    std::string s;
    for (size_t i = 0; i < depth; ++i)
      s += open;
    s += "1";
    for (size_t i = 0; i < depth; ++i)
      s += close;
    return s;
  };
  CAF_CHECK(json::parse(nest(json::max_depth, "[", "]"), "t.json"));
  expect_error(nest(json::max_depth + 1, "[", "]"), "1:257",
               "nesting deeper than 256 levels");
  CAF_CHECK(json::parse(nest(json::max_depth, "{\"a\":", "}"), "t.json"));
  expect_error(nest(json::max_depth + 1, "{\"a\":", "}"), "1:1281",
               "nesting deeper than 256");
  // A megabyte of brackets: fails fast at the limit instead of recursing a
  // million times.
  expect_error(std::string(1000000, '['), "1:257",
               "nesting deeper than 256 levels");
}

CAF_TEST(to_json round trips) {
  auto text
    = R"({"a":[1,2.5,-0.1,1e+300,"x\"\n\u0001"],"b":{"c":null,"d":true,"e":false}})";
  auto x = parse_ok(text);
  auto again = json::to_json(x);
  CAF_CHECK_EQUAL(json::to_json(parse_ok(again)), again);
  CAF_CHECK_EQUAL(parse_ok(again).find("a")->as_array()[3].as_double(), 1e300);
  CAF_CHECK_EQUAL(json::quote("a\"\\\n\x01"), "\"a\\\"\\\\\\n\\u0001\"");
  std::vector<json::member> members;
  members.push_back({"n", json::value{3}});
  members.push_back({"s", json::value{"v"}});
  members.push_back({"l", json::value{std::vector<json::value>{
                            json::value{true}, json::value{}}}});
  CAF_CHECK_EQUAL(json::to_json(json::value{std::move(members)}),
                  R"({"n":3,"s":"v","l":[true,null]})");
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
  CAF_CHECK_EQUAL(
    describe(bad.error()),
    tmp.file("bad.json")
      + ":3:1: expected a string key, got character '}' (byte 10)");
}

CAF_TEST(the fixture config.json) {
  auto x = json::parse_file(test::tiny_mixtral_dir() + "/config.json");
  CAF_REQUIRE(x);
  CAF_CHECK_EQUAL(x->find("hidden_size")->as_int64(), 64);
  CAF_CHECK_EQUAL(x->find("rope_theta")->as_double(), 1e6);
  CAF_CHECK_EQUAL(x->find("rms_norm_eps")->as_double(), 1e-5);
  CAF_CHECK(x->find("sliding_window")->is_null());
  CAF_CHECK_EQUAL(x->find("architectures")->as_array().at(0).as_string(),
                  "MixtralForCausalLM");
  CAF_CHECK_EQUAL(x->as_object().front().key, "architectures");
}

CAF_TEST(the fixture reference.json) {
  auto start = std::chrono::steady_clock::now();
  auto x = json::parse_file(test::tiny_mixtral_dir() + "/reference.json");
  auto ms = std::chrono::duration<double, std::milli>(
    std::chrono::steady_clock::now() - start);
  CAF_MESSAGE("reference.json parsed in " << ms.count() << " ms");
  CAF_CHECK_LESS(ms.count(), 1000.0);
  CAF_REQUIRE(x);
  CAF_CHECK_EQUAL(x->find("transformers")->as_string(), "5.17.0");
  auto& cases = x->find("cases")->as_array();
  CAF_REQUIRE_EQUAL(cases.size(), 4u);
  size_t lengths[] = {1, 5, 17, 40};
  for (size_t i = 0; i < 4; ++i) {
    auto& c = cases[i];
    auto n = lengths[i];
    CAF_CHECK_EQUAL(c.find("input_ids")->size(), n);
    CAF_CHECK_EQUAL(c.find("last_logits")->size(), 320u);
    CAF_CHECK_EQUAL(c.find("all_logits")->size(), n);
    CAF_CHECK_EQUAL(c.find("all_logits")->as_array().back().size(), 320u);
    CAF_CHECK_EQUAL(c.find("all_logits_argmax")->size(), n);
    CAF_CHECK_EQUAL(c.find("greedy_new_tokens")->size(), 12u);
    auto& topk = c.find("router_topk_per_layer")->as_array();
    CAF_CHECK_EQUAL(topk.size(), 2u);
    CAF_CHECK_EQUAL(topk.at(0).size(), n);
    CAF_CHECK_EQUAL(topk.at(0).as_array().at(0).size(), 2u);
  }
  CAF_CHECK_EQUAL(cases[0].find("input_ids")->as_array()[0].as_int64(), 203);
  CAF_CHECK_EQUAL(cases[0].find("last_logits")->as_array()[0].as_double(),
                  -0.219282);
  CAF_CHECK_EQUAL(cases[1].find("last_logits")->as_array()[1].as_double(),
                  -1.216112);
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
