#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/stop_matcher.hpp"
#include "text/stream_decoder.hpp"
#include "text/tokenizer.hpp"

namespace volt::http {

/// One choice of a response as its tokens arrive: text from a stream_decoder
/// (whole characters only), cut at the first stop string by a stop_matcher.
/// Tracks which tokens' text has been released, so that per-token data
/// (logprobs) goes out together with its text.
class choice_output {
public:
  /// Decodes with `tok` (null: the model has no tokenizer, and the choice is
  /// its token ids alone) and stops at `stops` (needs a tokenizer). With
  /// `context` (the prompt's last token), the text is decoded as the
  /// prompt's continuation: a first token that starts a word keeps its
  /// leading space, so that prompt + text reads as the model wrote it.
  choice_output(std::shared_ptr<const tokenizer> tok,
                std::vector<std::string> stops,
                std::optional<int32_t> context = std::nullopt);

  /// Adds the next generated token; returns the text it released (often
  /// its own text; empty while a character or a possible stop string is
  /// incomplete, and after a stop string matched).
  std::string push(int32_t id);

  /// Releases the text held back at the end of the choice.
  std::string finish();

  /// Whether a stop string ended the choice.
  bool stopped() const {
    return stops_.stopped();
  }

  /// Tokens the choice consumed: up to and including the one that completed
  /// a stop string.
  const std::vector<int32_t>& tokens() const {
    return tokens_;
  }

  /// The text released so far.
  const std::string& text() const {
    return text_;
  }

  /// How many of tokens() have their text released (all of it, or, after a
  /// stop string or finish(), at least its beginning): per-token data up to
  /// there is due.
  size_t released_tokens() const {
    return released_;
  }

  /// Byte offset in text() at which token `i`'s text begins.
  size_t token_offset(size_t i) const {
    return spans_[i].first;
  }

private:
  /// Advances released_ over the tokens whose text is out.
  void release(bool at_end);

  std::shared_ptr<const tokenizer> tok_;
  std::optional<stream_decoder> decoder_;
  stop_matcher stops_;
  std::vector<int32_t> tokens_;
  /// Each token's [begin, end) in the decoded text (before stop strings).
  std::vector<std::pair<size_t, size_t>> spans_;
  size_t decoded_ = 0;
  std::string text_;
  size_t released_ = 0;
  bool finished_ = false;
};

} // namespace volt::http
