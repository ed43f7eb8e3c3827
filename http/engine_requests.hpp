#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "http/api_error.hpp"
#include "http/openai_request.hpp"
#include "http/served_model.hpp"

namespace volt::http {

/// The engine's share of one completion or chat request.
struct engine_requests {
  /// One per prompt (a chat request has one).
  std::vector<generate_request> requests;
  /// Each prompt as text, for `echo` (empty without a tokenizer).
  std::vector<std::string> prompt_texts;
};

/// Turns a parsed request into engine requests for `model`: checks the model
/// name (404), tokenises text prompts or renders the chat (400 when the
/// model cannot: no tokenizer, no chat template), checks token ids against
/// the vocabulary (400) and prompt lengths against the context (413), and
/// fills in the defaults (max_tokens, a fresh seed).
std::optional<api_error> prepare_requests(const completion_params& params,
                                          const served_model& model,
                                          engine_requests& out);

} // namespace volt::http
