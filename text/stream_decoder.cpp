#include "text/stream_decoder.hpp"

#include "base/error.hpp"
#include "text/utf8.hpp"

namespace volt {

stream_decoder::stream_decoder(std::shared_ptr<const tokenizer> tok,
                               bool skip_special_tokens)
  : tok_(std::move(tok)), skip_special_tokens_(skip_special_tokens) {}

caf::expected<std::string> stream_decoder::push(int32_t id) {
  // piece() reports an unknown id with the same message as decode().
  if (!tok_->contains(id))
    return tok_->piece(id).error();
  // decode() drops it and joins its neighbours into one run; so does this.
  if (skip_special_tokens_ && tok_->is_special(id))
    return std::string{};
  window_.push_back(id);
  // Bytes before an unfinished character are final: sentencepiece reads a
  // byte run one character at a time, and a character never spans a lead
  // byte.
  auto end = window_.size() - unfinished_tail();
  if (end <= context_size())
    return std::string{};
  return emit(end);
}

caf::expected<std::string> stream_decoder::finish() {
  if (window_.size() <= context_size())
    return std::string{};
  return emit(window_.size());
}

size_t stream_decoder::unfinished_tail() const {
  uint8_t tail[4];
  size_t n = 0;
  for (auto i = window_.rbegin(); i != window_.rend() && n < 4; ++i) {
    auto byte = tok_->byte_value(*i);
    if (!byte)
      break;
    tail[3 - n++] = *byte;
  }
  return unfinished_utf8_tail(tail + 4 - n, n);
}

caf::expected<std::string> stream_decoder::emit(size_t end) {
  std::vector<int32_t> ids(window_.begin(), window_.begin() + end);
  auto text = tok_->decode(ids, skip_special_tokens_);
  if (!text)
    return text.error();
  // Decoding after a context token never rewrites the context's own text; a
  // mismatch would be a bug in this class, not bad input.
  if (text->compare(0, context_text_.size(), context_text_) != 0)
    return make_volt_error(volt_errc::internal,
                           "stream_decoder: the window's text does not start "
                           "with its context token's text");
  auto out = text->substr(context_text_.size());
  window_.erase(window_.begin(), window_.begin() + (end - 1));
  has_context_ = true;
  auto context = tok_->decode({window_.front()}, skip_special_tokens_);
  if (!context)
    return context.error();
  context_text_ = std::move(*context);
  return out;
}

} // namespace volt
