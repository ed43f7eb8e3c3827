#pragma once

// Renders responses of the OpenAI API: whole completion and chat objects,
// and the chunks of a stream as server-sent events.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "http/openai_request.hpp"

namespace volt::http {

/// What every object of one response shares.
struct response_meta {
  api_kind kind = api_kind::completion;
  /// "cmpl-..." or "chatcmpl-..." followed by 24 random hex digits.
  std::string id;
  /// Unix time in seconds.
  int64_t created = 0;
  std::string model;
};

/// A fresh id and the current time for a response of `kind` by `model`.
response_meta new_response_meta(api_kind kind, std::string model);

/// Tokens a request used.
struct usage_counts {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

/// {"prompt_tokens", "completion_tokens", "total_tokens"}.
nlohmann::ordered_json usage_json(const usage_counts& usage);

/// Degraded routing in a response (Volt's extension): the experts without a
/// live host that its prompts lost, and the tokens generated without them.
struct degraded_summary {
  std::vector<uint32_t> missing_experts; // ascending; empty: not degraded
  int64_t tokens = 0;

  /// Adds one prompt's share.
  void add(const std::vector<uint32_t>& experts, int64_t n);
};

/// Adds "degraded": {"missing_experts", "tokens"} to a response object when
/// `degraded` lost any expert.
void add_degraded(nlohmann::ordered_json& response,
                  const degraded_summary& degraded);

/// One choice of a whole (not streamed) response.
struct choice_result {
  size_t index = 0;
  std::string text;
  /// "stop" or "length".
  std::string finish_reason;
  /// The logprobs object of this choice; null when not asked for.
  nlohmann::ordered_json logprobs;
  /// Set only for a model without a tokenizer: the choice as token ids.
  std::vector<int32_t> token_ids;
  bool with_token_ids = false;
};

/// The whole response: "text_completion" or "chat.completion".
nlohmann::ordered_json completion_response(const response_meta& meta,
                                   const std::vector<choice_result>& choices,
                                   const usage_counts& usage);

/// A chunk of a stream carrying one choice's new text (a chat delta; the
/// first delta of a chat choice also names the assistant role). `usage_null`
/// adds "usage": null, as OpenAI does on every chunk but the last when
/// stream_options.include_usage is set.
nlohmann::ordered_json choice_chunk(const response_meta& meta, const choice_result& delta,
                            bool first, bool usage_null);

/// The last chunk of a stream with include_usage: no choices, the usage.
nlohmann::ordered_json usage_chunk(const response_meta& meta,
                           const usage_counts& usage);

/// A chunk without choices: the head alone, for a last chunk that carries
/// only extensions ("degraded").
nlohmann::ordered_json empty_chunk(const response_meta& meta);

/// `value` as one server-sent event: "data: <json>\n\n".
std::string sse_event(const nlohmann::ordered_json& value);

/// The event that ends an OpenAI stream.
inline const std::string sse_done = "data: [DONE]\n\n";

} // namespace volt::http
