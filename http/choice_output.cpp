#include "http/choice_output.hpp"

namespace volt::http {

choice_output::choice_output(std::shared_ptr<const tokenizer> tok,
                             std::vector<std::string> stops,
                             std::optional<int32_t> context)
  : tok_(std::move(tok)), stops_(std::move(stops)) {
  if (!tok_)
    return;
  decoder_.emplace(tok_, true);
  if (!context)
    return;
  // The decoder keeps the last token that produced text as the context of
  // the next one. A context without text of its own (a special token, a
  // byte of an unfinished character) would carry nothing or leak prompt
  // bytes into the choice: start afresh then.
  auto text = decoder_->push(*context);
  if (!text || text->empty())
    decoder_.emplace(tok_, true);
}

std::string choice_output::push(int32_t id) {
  if (stopped() || finished_)
    return {};
  tokens_.push_back(id);
  std::string piece;
  if (decoder_) {
    // An id the tokenizer does not know (a model whose embedding is padded
    // past the vocabulary) has no text; the id still counts.
    if (auto text = decoder_->push(id))
      piece = std::move(*text);
  }
  spans_.emplace_back(decoded_, decoded_ + piece.size());
  decoded_ += piece.size();
  auto out = stops_.push(piece);
  text_ += out;
  release(stopped());
  return out;
}

std::string choice_output::finish() {
  if (finished_)
    return {};
  finished_ = true;
  std::string out;
  if (decoder_ && !stopped()) {
    if (auto rest = decoder_->finish()) {
      if (!spans_.empty())
        spans_.back().second += rest->size();
      decoded_ += rest->size();
      out = stops_.push(*rest);
    }
  }
  out += stops_.finish();
  text_ += out;
  release(true);
  return out;
}

void choice_output::release(bool at_end) {
  auto shown = text_.size();
  auto due = [&](size_t begin, size_t end) {
    if (!decoder_ || (at_end && !stopped()))
      return true;
    // A token without text of its own (a byte of an unfinished character, a
    // skipped special token) goes out with the text that follows it.
    if (begin == end)
      return begin < shown;
    // After a stop string, the token it cut counts as released.
    return at_end ? begin < shown : end <= shown;
  };
  while (released_ < spans_.size()
         && due(spans_[released_].first, spans_[released_].second))
    ++released_;
}

} // namespace volt::http
