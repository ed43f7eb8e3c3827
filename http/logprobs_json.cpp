#include "http/logprobs_json.hpp"

#include <algorithm>

namespace volt::http {

namespace {

/// sentencepiece's word boundary, U+2581.
const std::string word_mark = "\xe2\x96\x81";

std::vector<int> bytes_of(const std::string& text) {
  std::vector<int> out;
  out.reserve(text.size());
  for (auto c : text)
    out.push_back(static_cast<unsigned char>(c));
  return out;
}

/// The `top` most likely alternatives of `t` (the engine sends them most
/// likely first; it may have computed more for another choice's sake).
size_t top_count(const token_logprob& t, int32_t top) {
  return std::min(t.top.size(), static_cast<size_t>(std::max(top, 0)));
}

} // namespace

std::string token_text(const tokenizer* tok, int32_t id) {
  if (tok == nullptr || !tok->contains(id))
    return "token_id:" + std::to_string(id);
  if (auto byte = tok->byte_value(id))
    return std::string(1, static_cast<char>(*byte));
  auto piece = tok->piece(id);
  if (!piece)
    return "token_id:" + std::to_string(id);
  std::string out;
  for (size_t i = 0; i < piece->size();) {
    if (piece->compare(i, word_mark.size(), word_mark) == 0) {
      out += ' ';
      i += word_mark.size();
    } else {
      out += (*piece)[i++];
    }
  }
  return out;
}

nlohmann::ordered_json completion_logprobs(const tokenizer* tok,
                                   const std::vector<token_logprob>& tokens,
                                   const std::vector<size_t>& offsets,
                                   int32_t top) {
  auto texts = nlohmann::ordered_json::array();
  auto values = nlohmann::ordered_json::array();
  auto tops = nlohmann::ordered_json::array();
  for (const auto& t : tokens) {
    texts.push_back(token_text(tok, t.token));
    values.push_back(t.logprob);
    auto alternatives = nlohmann::ordered_json::object();
    for (size_t i = 0; i < top_count(t, top); ++i)
      alternatives[token_text(tok, t.top[i].token)] = t.top[i].logprob;
    tops.push_back(std::move(alternatives));
  }
  return {{"tokens", std::move(texts)},
          {"token_logprobs", std::move(values)},
          {"top_logprobs", std::move(tops)},
          {"text_offset", offsets}};
}

nlohmann::ordered_json chat_logprobs(const tokenizer* tok,
                             const std::vector<token_logprob>& tokens,
                             int32_t top) {
  auto content = nlohmann::ordered_json::array();
  for (const auto& t : tokens) {
    auto text = token_text(tok, t.token);
    auto alternatives = nlohmann::ordered_json::array();
    for (size_t i = 0; i < top_count(t, top); ++i) {
      auto alt = token_text(tok, t.top[i].token);
      alternatives.push_back({{"token", alt},
                              {"logprob", t.top[i].logprob},
                              {"bytes", bytes_of(alt)}});
    }
    content.push_back({{"token", text},
                       {"logprob", t.logprob},
                       {"bytes", bytes_of(text)},
                       {"top_logprobs", std::move(alternatives)}});
  }
  return {{"content", std::move(content)}, {"refusal", nullptr}};
}

} // namespace volt::http
