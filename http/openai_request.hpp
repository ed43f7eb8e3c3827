#pragma once

// The one place that turns the JSON of an OpenAI completion or chat request
// into Volt's terms, with one-line errors naming the field.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "http/api_error.hpp"
#include "text/chat_template.hpp"

namespace volt::http {

/// Which endpoint a request came to.
enum class api_kind {
  /// POST /v1/completions: prompts in, text out.
  completion,
  /// POST /v1/chat/completions: messages in, an assistant message out.
  chat,
};

/// One prompt of a completion request, as the client gave it.
struct prompt_input {
  /// Text to tokenise; unused when `ids` is given.
  std::string text;
  /// Token ids given directly (the prompt was an array of integers).
  std::optional<std::vector<int32_t>> ids;
};

/// A completion or chat request, checked for syntax and ranges; what needs
/// the model (tokenising, context length, the chat template) comes later.
struct completion_params {
  api_kind kind = api_kind::completion;
  /// The `model` field; empty when left out (the served model is meant).
  std::string model;
  /// Completions: one entry per prompt (OpenAI allows a batch).
  std::vector<prompt_input> prompts;
  /// Chat: the conversation.
  std::vector<chat_message> messages;
  /// `max_tokens` (chat also `max_completion_tokens`); nullopt takes the
  /// default: 16 for completions (as OpenAI), the rest of the context for
  /// chat.
  std::optional<uint32_t> max_tokens;
  /// OpenAI's default is 1; 0 is greedy.
  double temperature = 1;
  double top_p = 1;
  /// nullopt draws a fresh seed per request (OpenAI's behaviour without one).
  std::optional<uint64_t> seed;
  /// Choices per prompt.
  uint32_t n = 1;
  /// Strings that end a choice; not part of its text.
  std::vector<std::string> stop;
  /// Volt and vLLM extension: token ids that end a choice as EOS does (the
  /// token is part of the choice).
  std::vector<int32_t> stop_token_ids;
  /// Top-N alternatives per token: completions' `logprobs` N, chat's
  /// `top_logprobs` N once `logprobs` is true; nullopt returns none.
  std::optional<int32_t> logprobs;
  /// Completions: prepend the prompt to the text.
  bool echo = false;
  bool stream = false;
  /// `stream_options.include_usage`: one last chunk with the usage.
  bool include_usage = false;
  /// Volt and vLLM extension: keep going past the end-of-sequence token.
  bool ignore_eos = false;
};

/// The most stop strings a request may give (OpenAI allows 4).
constexpr size_t max_stop_strings = 16;

/// The most prompts in one completion request.
constexpr size_t max_prompts = 64;

/// Reads a request body of endpoint `kind`. Errors are 400s naming the
/// field; unknown fields are errors too (with a suggestion), and OpenAI
/// fields Volt does not implement are accepted only with neutral values.
std::optional<api_error> parse_completion(const nlohmann::json& body,
                                          api_kind kind,
                                          completion_params& out);

/// Parses `text` as JSON; a 400 naming the position when it is not.
std::optional<api_error> parse_body(const std::string& text,
                                    nlohmann::json& out);

} // namespace volt::http
