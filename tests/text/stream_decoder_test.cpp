#define CAF_SUITE text.stream_decoder

// Streaming detokenisation: whatever the ids, the pieces concatenate to
// tokenizer::decode of all of them, each piece is whole UTF-8, and the window
// stays a few tokens long.

#include "text/stream_decoder.hpp"

#include <random>

#include "tests/text/text_fixture.hpp"
#include "text/utf8.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// The context token and up to 3 bytes of an unfinished character.
constexpr size_t max_window = 4;

struct fixture {
  std::shared_ptr<const tokenizer> tok = text_tokenizer();

  /// Streams `ids` one at a time; returns the pieces, finish()'s last.
  std::vector<std::string> stream(const std::vector<int32_t>& ids,
                                  bool skip = true) {
    stream_decoder dec{tok, skip};
    std::vector<std::string> out;
    for (auto id : ids) {
      auto piece = dec.push(id);
      if (!piece)
        CAF_FAIL(show_ids(ids) << ": " << describe(piece.error()));
      out.push_back(std::move(*piece));
      if (dec.window_size() > max_window)
        CAF_FAIL(show_ids(ids) << ": window of " << dec.window_size());
    }
    auto rest = dec.finish();
    if (!rest)
      CAF_FAIL(show_ids(ids) << ": " << describe(rest.error()));
    out.push_back(std::move(*rest));
    return out;
  }

  /// Checks that streaming `ids` yields whole UTF-8 pieces that add up to
  /// decode(ids); returns false on a mismatch (so loops can stop early).
  bool check_stream(const std::vector<int32_t>& ids, bool skip) {
    auto pieces = stream(ids, skip);
    std::string joined;
    bool whole = true;
    for (const auto& p : pieces) {
      joined += p;
      whole = whole && is_valid_utf8(p);
    }
    auto expected = value_of(tok->decode(ids, skip));
    CAF_CHECK(whole);
    CAF_CHECK_EQUAL(joined, expected);
    if (!whole || joined != expected) {
      CAF_MESSAGE("ids " << show_ids(ids) << " skip " << skip);
      return false;
    }
    return true;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(stream_decoder_tests, fixture)

CAF_TEST(every reference sequence streams to its decoding) {
  const auto& ref = load_text_reference();
  std::vector<std::vector<int32_t>> sequences;
  for (const auto& c : ref.tokenizer_cases)
    sequences.push_back(c.ids);
  for (const auto& c : ref.cases) {
    sequences.push_back(c.input_ids);
    sequences.push_back(c.greedy_new_tokens);
    auto all = c.input_ids;
    all.insert(all.end(), c.greedy_new_tokens.begin(),
               c.greedy_new_tokens.end());
    all.push_back(2);
    sequences.push_back(all);
  }
  for (const auto& ids : sequences)
    for (bool skip : {true, false})
      check_stream(ids, skip);
  // The greedy replies, as a server would stream them.
  for (const auto& c : ref.cases) {
    std::string joined;
    for (const auto& p : stream(c.greedy_new_tokens))
      joined += p;
    CAF_CHECK_EQUAL(joined, c.greedy_text);
  }
}

CAF_TEST(byte fallback characters come out whole) {
  // "😀🚀": "▁", then four byte pieces per emoji.
  auto pieces = stream({802, 243, 162, 155, 131, 243, 162, 157, 131});
  std::vector<std::string> expected{
    "", "", "", "", "\xf0\x9f\x98\x80", "", "", "", "\xf0\x9f\x9a\x80", ""};
  CAF_CHECK(pieces == expected);
  // "✓" (three bytes) after a word, then more text.
  pieces = stream({380, 229, 159, 150, 380});
  expected = {"and", "", "", "\xe2\x9c\x93", " and", ""};
  CAF_CHECK(pieces == expected);
}

CAF_TEST(an unfinished character is flushed by finish) {
  // <0xF0><0x9F> then the end: sentencepiece writes U+FFFD per byte.
  auto pieces = stream({440, 243, 162});
  CAF_CHECK_EQUAL(pieces.size(), 4u);
  CAF_CHECK_EQUAL(pieces[0], "def");
  CAF_CHECK_EQUAL(pieces[1], "");
  CAF_CHECK_EQUAL(pieces[2], "");
  CAF_CHECK_EQUAL(pieces[3], "\xef\xbf\xbd\xef\xbf\xbd");
  // A broken character does not hold up what follows.
  pieces = stream({243, 162, 440});
  CAF_CHECK_EQUAL(pieces[2], "\xef\xbf\xbd\xef\xbf\xbd def");
}

CAF_TEST(the leading space matches decoding the whole) {
  CAF_CHECK(stream({440, 440})
            == (std::vector<std::string>{"def", " def", ""}));
  CAF_CHECK(stream({802, 440}) == (std::vector<std::string>{"", " def", ""}));
  CAF_CHECK(stream({1, 440, 2, 440})
            == (std::vector<std::string>{"", "def", "", " def", ""}));
  CAF_CHECK(stream({1, 440, 2, 440}, false)
            == (std::vector<std::string>{"<s>", "def", "</s>", "def", ""}));
}

CAF_TEST(an unknown id is an error that changes nothing) {
  stream_decoder dec{tok};
  CAF_CHECK_EQUAL(value_of(dec.push(440)), "def");
  auto bad = dec.push(1024);
  CAF_REQUIRE(!bad);
  CAF_CHECK(bad.error() == volt_errc::invalid_request);
  CAF_CHECK_EQUAL(describe(bad.error()),
                  "token id 1024 is not in the vocabulary (ids 0 to 1023)");
  CAF_CHECK(!dec.push(-7));
  CAF_CHECK_EQUAL(value_of(dec.push(440)), " def");
  CAF_CHECK_EQUAL(value_of(dec.finish()), "");
  // Pushing after finish continues the same text.
  CAF_CHECK_EQUAL(value_of(dec.push(440)), " def");
}

CAF_TEST(random sequences stream to their decoding) {
  // Biased towards what is hard: byte pieces (ids 3 to 258), bare "▁" runs,
  // special tokens between bytes, and the leading-space pieces.
  std::mt19937 rng{20240611};
  std::vector<int32_t> tricky{0, 1, 2, 802, 259, 260, 261, 440, 13, 12};
  auto next_id = [&] {
    switch (rng() % 4) {
      case 0: return static_cast<int32_t>(3 + rng() % 256);
      case 1: return tricky[rng() % tricky.size()];
      case 2: // A lead byte of a multi-byte character, or a continuation.
        return static_cast<int32_t>(
          3 + (rng() % 2 ? 0xC2 + rng() % 51 : 0x80 + rng() % 64));
      default: return static_cast<int32_t>(rng() % 1024);
    }
  };
  for (int n = 0; n < 3000; ++n) {
    std::vector<int32_t> ids(1 + rng() % 24);
    for (auto& id : ids)
      id = next_id();
    if (!check_stream(ids, n % 2 == 0))
      break;
  }
}

CAF_TEST(a long generation keeps a small window) {
  std::mt19937 rng{7};
  stream_decoder dec{tok};
  std::vector<int32_t> ids;
  std::string joined;
  size_t widest = 0;
  for (int n = 0; n < 20000; ++n) {
    auto id = static_cast<int32_t>(rng() % 1024);
    ids.push_back(id);
    joined += value_of(dec.push(id));
    widest = std::max(widest, dec.window_size());
  }
  joined += value_of(dec.finish());
  CAF_CHECK_LESS_OR_EQUAL(widest, max_window);
  CAF_CHECK_EQUAL(joined, value_of(tok->decode(ids)));
}

CAF_TEST(the UTF - 8 checks) {
  CAF_CHECK(is_valid_utf8(""));
  CAF_CHECK(is_valid_utf8("a\xc3\xa9\xe2\x9c\x93\xf0\x9f\x9a\x80"));
  CAF_CHECK(!is_valid_utf8("\xc3")); // truncated
  CAF_CHECK(!is_valid_utf8("\x80")); // lone continuation
  CAF_CHECK(!is_valid_utf8("\xc0\x80")); // overlong NUL
  CAF_CHECK(!is_valid_utf8("\xe0\x80\x80")); // overlong
  CAF_CHECK(!is_valid_utf8("\xed\xa0\x80")); // surrogate
  CAF_CHECK(!is_valid_utf8("\xf4\x90\x80\x80")); // past U+10FFFF
  auto unfinished = [](std::string_view s) {
    return unfinished_utf8_tail(reinterpret_cast<const uint8_t*>(s.data()),
                                s.size());
  };
  CAF_CHECK_EQUAL(unfinished("a\xf0\x9f\x9a"), 3u);
  CAF_CHECK_EQUAL(unfinished("\xe2"), 1u);
  CAF_CHECK_EQUAL(unfinished("\xc3\xe2\x82"), 2u);
  CAF_CHECK_EQUAL(unfinished("\xf0\x9f\x9a\x80"), 0u);
  CAF_CHECK_EQUAL(unfinished("a"), 0u);
  CAF_CHECK_EQUAL(unfinished("\x9f\x9a"), 0u);
  CAF_CHECK_EQUAL(unfinished("\xff"), 0u);
  CAF_CHECK_EQUAL(unfinished(""), 0u);
}

CAF_TEST_FIXTURE_SCOPE_END
()
