#pragma once

// The logprobs objects of OpenAI's API, from the engine's per-token
// log-probabilities.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/messages.hpp"
#include "text/tokenizer.hpp"

namespace volt::http {

/// The text of token `id` as logprobs show it: its piece with sentencepiece's
/// "▁" as a space, a byte piece ("<0xE2>") as that byte (not UTF-8 on its
/// own: JSON shows it as U+FFFD, `bytes` keeps it); "token_id:N" without a
/// tokenizer (as vLLM writes it).
std::string token_text(const tokenizer* tok, int32_t id);

/// Completions' logprobs of some tokens of a choice: {"tokens",
/// "token_logprobs", "top_logprobs" (one {text: logprob} object per token
/// with its `top` most likely alternatives), "text_offset" (`offsets`, bytes
/// into the choice's text)}.
nlohmann::ordered_json completion_logprobs(const tokenizer* tok,
                                   const std::vector<token_logprob>& tokens,
                                   const std::vector<size_t>& offsets,
                                   int32_t top);

/// Chat's logprobs of some tokens of a choice: {"content": [{"token",
/// "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]}.
nlohmann::ordered_json chat_logprobs(const tokenizer* tok,
                             const std::vector<token_logprob>& tokens,
                             int32_t top);

} // namespace volt::http
