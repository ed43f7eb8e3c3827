#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "caf/expected.hpp"

#include "text/tokenizer.hpp"

namespace volt {

/// Turns generated token ids into text as they arrive, for streaming
/// responses. Each push returns only text that later tokens cannot change: it
/// holds back the byte-fallback pieces ("<0xE2>", "<0x82>", ...) of a UTF-8
/// character until the character is complete, so no returned piece ever ends
/// inside a character. The pieces of all pushes plus finish() concatenate to
/// exactly tokenizer::decode(all ids), leading space included.
///
/// Each push decodes a window of at most a few tokens: the last token already
/// returned, whose decoding sets the leading-space and byte-run state that the
/// new tokens are decoded in, plus the up to 3 bytes of an unfinished
/// character and the new token. The new text is the window's decoding minus
/// the context token's, so the cost per token is constant however long the
/// generation runs.
class stream_decoder {
public:
  /// Decodes with `tok`; `skip_special_tokens` as in tokenizer::decode.
  explicit stream_decoder(std::shared_ptr<const tokenizer> tok,
                          bool skip_special_tokens = true);

  /// Adds the next token; returns the text that became final (often the
  /// token's own text, empty while a character is incomplete). Errors
  /// (invalid_request) on an id outside the vocabulary, which changes nothing.
  caf::expected<std::string> push(int32_t id);

  /// Returns the text still held back at the end of a generation (an
  /// unfinished character decodes to U+FFFD per byte, as tokenizer::decode
  /// does). Pushing afterwards continues the same sequence.
  caf::expected<std::string> finish();

  /// How many tokens the decoder keeps between calls (context plus held
  /// back); at most 4.
  size_t window_size() const {
    return window_.size();
  }

private:
  /// How many tokens at the end of the window are byte pieces of a character
  /// that more bytes could still complete.
  size_t unfinished_tail() const;

  /// Returns the text of window_[context, end), then keeps window_[end - 1]
  /// as the context token in front of the tokens from `end` on.
  caf::expected<std::string> emit(size_t end);

  /// Number of context tokens at the front of window_ (0 or 1).
  size_t context_size() const {
    return has_context_ ? 1 : 0;
  }

  std::shared_ptr<const tokenizer> tok_;
  bool skip_special_tokens_;
  /// The context token (once anything was returned), then the held tokens.
  std::vector<int32_t> window_;
  /// decode(context token); empty before the first return.
  std::string context_text_;
  bool has_context_ = false;
};

} // namespace volt
