#pragma once

// The words for why a sequence stopped (generate_result::finish_reason).

#include <string>

namespace volt::finish {

/// max_new_tokens reached.
inline const std::string length = "length";
/// The model's EOS token (not with ignore_eos).
inline const std::string eos = "eos";
/// One of the request's stop_token_ids, or a cancel for a stop string.
inline const std::string stop = "stop";
/// The model's context is full.
inline const std::string context = "context";
/// Cancelled by the client, or its stream sink went down.
inline const std::string cancelled = "cancelled";

/// The reason in the words of OpenAI's API: "stop" for eos and stop,
/// "length" for length and context (as vLLM reports a full context), others
/// as they are.
inline std::string openai(const std::string& reason) {
  if (reason == eos)
    return stop;
  if (reason == context)
    return length;
  return reason;
}

} // namespace volt::finish
