#define CAF_SUITE http.stop_matcher

// Stop strings in text that arrives a token at a time: found across piece
// boundaries, never released, the earliest match wins, and the text before
// it is released exactly once.

#include "http/stop_matcher.hpp"

#include <random>

#include "tests/test_dsl.hpp"

using namespace volt::http;

namespace {

/// Pushes `pieces` and returns what was released, finish() included.
std::string run(stop_matcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces)
    out += m.push(p);
  return out + m.finish();
}

} // namespace

CAF_TEST(without stop strings every piece goes out at once) {
  stop_matcher m;
  CAF_CHECK_EQUAL(m.push("abc"), "abc");
  CAF_CHECK_EQUAL(m.held(), 0u);
  CAF_CHECK_EQUAL(m.finish(), "");
  CAF_CHECK(!m.stopped());
}

CAF_TEST(a stop string split over pieces is found and left out) {
  stop_matcher m{{"\n\n"}};
  CAF_CHECK_EQUAL(m.push("def f():"), "def f():");
  CAF_CHECK_EQUAL(m.push("\n"), "");
  CAF_CHECK_EQUAL(m.held(), 1u);
  CAF_CHECK_EQUAL(m.push("\n    x"), "");
  CAF_CHECK(m.stopped());
  CAF_CHECK_EQUAL(m.push("more"), "");
  CAF_CHECK_EQUAL(m.finish(), "");
}

CAF_TEST(a held prefix that does not complete is released) {
  stop_matcher m{{"STOP"}};
  CAF_CHECK_EQUAL(m.push("xST"), "x");
  CAF_CHECK_EQUAL(m.push("OX"), "STOX");
  CAF_CHECK_EQUAL(m.push("S"), "");
  CAF_CHECK_EQUAL(m.finish(), "S");
  CAF_CHECK(!m.stopped());
}

CAF_TEST(the earliest of several stop strings wins) {
  stop_matcher m{{"cd", "bcdef", "x"}};
  CAF_CHECK_EQUAL(run(m, {"ab", "cdefx"}), "a");
  CAF_CHECK(m.stopped());
  stop_matcher n{{"bcd", "c"}};
  CAF_CHECK_EQUAL(run(n, {"abcd"}), "a");
}

CAF_TEST(a stop string inside one piece cuts it) {
  stop_matcher m{{"</s>"}};
  CAF_CHECK_EQUAL(m.push("hello</s>world"), "hello");
  CAF_CHECK(m.stopped());
}

CAF_TEST(an overlapping prefix is held as long as it may still match) {
  // "aab" can start at the second 'a' of "aaab".
  stop_matcher m{{"aab"}};
  CAF_CHECK_EQUAL(m.push("a"), "");
  CAF_CHECK_EQUAL(m.push("a"), "");
  CAF_CHECK_EQUAL(m.push("a"), "a");
  CAF_CHECK_EQUAL(m.push("b"), "");
  CAF_CHECK(m.stopped());
}

CAF_TEST(random splits give the same text as one search) {
  std::mt19937 gen{7};
  const std::string alphabet = "ab\n";
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    auto len = gen() % 30;
    for (size_t i = 0; i < len; ++i)
      text += alphabet[gen() % alphabet.size()];
    std::vector<std::string> stops;
    for (int s = 0; s < 1 + static_cast<int>(gen() % 3); ++s) {
      std::string stop;
      for (size_t i = 0; i < 1 + gen() % 4; ++i)
        stop += alphabet[gen() % alphabet.size()];
      stops.push_back(stop);
    }
    auto first = std::string::npos;
    for (const auto& s : stops)
      first = std::min(first, text.find(s));
    auto expected = text.substr(0, first);
    std::vector<std::string> pieces;
    for (size_t at = 0; at < text.size();) {
      auto n = std::min<size_t>(1 + gen() % 4, text.size() - at);
      pieces.push_back(text.substr(at, n));
      at += n;
    }
    stop_matcher m{stops};
    auto got = run(m, pieces);
    if (got != expected || m.stopped() != (first != std::string::npos))
      CAF_FAIL("text '" << text << "': expected '" << expected << "', got '"
                        << got << "'");
  }
}
