#define CAF_SUITE http.choice_output

// A choice's text as tokens arrive: the reference continuations stream to
// exactly the tokenizer's decoding, stop strings cut them, and per-token
// data is released together with its text.

#include "http/choice_output.hpp"

#include "tests/text/text_fixture.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::http;
using namespace volt::test;

namespace {

/// Pushes every id of `ids` into `out`, then finishes it; returns the text.
std::string stream_all(choice_output& out, const std::vector<int32_t>& ids) {
  std::string text;
  for (auto id : ids) {
    text += out.push(id);
    CAF_CHECK_LESS_OR_EQUAL(out.released_tokens(), out.tokens().size());
  }
  return text + out.finish();
}

} // namespace

CAF_TEST(reference continuations stream to their decoding) {
  auto tok = text_tokenizer();
  for (const auto& c : load_text_reference().cases) {
    choice_output out{tok, {}};
    auto streamed = stream_all(out, c.greedy_new_tokens);
    CAF_CHECK_EQUAL(streamed, c.greedy_text);
    CAF_CHECK_EQUAL(out.text(), c.greedy_text);
    CAF_CHECK_EQUAL(out.released_tokens(), c.greedy_new_tokens.size());
    CAF_CHECK(!out.stopped());
    for (size_t i = 1; i < out.tokens().size(); ++i)
      CAF_CHECK_LESS_OR_EQUAL(out.token_offset(i - 1), out.token_offset(i));
  }
}

CAF_TEST(a stop string cuts the text and releases the token it cut) {
  auto tok = text_tokenizer();
  const auto& c = load_text_reference().cases[0];
  auto cut = c.greedy_text.find("\n\n");
  CAF_REQUIRE_NOT_EQUAL(cut, std::string::npos);
  choice_output out{tok, {"\n\n"}};
  std::string streamed;
  size_t pushed = 0;
  for (auto id : c.greedy_new_tokens) {
    streamed += out.push(id);
    ++pushed;
    if (out.stopped())
      break;
  }
  streamed += out.finish();
  CAF_CHECK(out.stopped());
  CAF_CHECK_EQUAL(streamed, c.greedy_text.substr(0, cut));
  CAF_CHECK_EQUAL(out.tokens().size(), pushed);
  CAF_CHECK_LESS(pushed, c.greedy_new_tokens.size());
  // Every token whose text begins before the cut is released, none after.
  for (size_t i = 0; i < out.released_tokens(); ++i)
    CAF_CHECK_LESS(out.token_offset(i), cut);
  CAF_CHECK_GREATER(out.released_tokens(), 0u);
  // Tokens after the stop string are dropped.
  CAF_CHECK_EQUAL(out.push(c.greedy_new_tokens.back()), "");
  CAF_CHECK_EQUAL(out.tokens().size(), pushed);
}

CAF_TEST(text held for a possible stop string goes out with its tokens) {
  auto tok = text_tokenizer();
  const auto& c = load_text_reference().cases[0];
  // A stop string that never matches but whose first character is common.
  choice_output out{tok, {"\nNEVER"}};
  CAF_CHECK_EQUAL(stream_all(out, c.greedy_new_tokens), c.greedy_text);
  CAF_CHECK_EQUAL(out.released_tokens(), c.greedy_new_tokens.size());
}

CAF_TEST(without a tokenizer a choice is its ids) {
  choice_output out{nullptr, {}};
  CAF_CHECK_EQUAL(out.push(5), "");
  CAF_CHECK_EQUAL(out.push(7), "");
  CAF_CHECK_EQUAL(out.released_tokens(), 2u);
  CAF_CHECK_EQUAL(out.finish(), "");
  CAF_CHECK_EQUAL(out.tokens(), (std::vector<int32_t>{5, 7}));
}

CAF_TEST(byte pieces of one character are released with the character) {
  auto tok = text_tokenizer();
  auto ids = tok->encode("é€", false);
  choice_output out{tok, {}};
  CAF_CHECK_EQUAL(stream_all(out, ids), value_of(tok->decode(ids)));
  CAF_CHECK_EQUAL(out.released_tokens(), ids.size());
}

CAF_TEST(with the prompt as context the text continues the prompt) {
  auto tok = text_tokenizer();
  for (const auto& c : load_text_reference().cases) {
    choice_output out{tok, {}, c.input_ids.back()};
    auto streamed = stream_all(out, c.greedy_new_tokens);
    auto all = c.input_ids;
    all.insert(all.end(), c.greedy_new_tokens.begin(),
               c.greedy_new_tokens.end());
    CAF_CHECK_EQUAL(value_of(tok->decode(c.input_ids)) + streamed,
                    value_of(tok->decode(all)));
    // The reference decoded the new tokens alone: at most a leading space
    // differs.
    CAF_CHECK(streamed == c.greedy_text || streamed == " " + c.greedy_text);
  }
}
