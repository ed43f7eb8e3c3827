#pragma once

#include <string>
#include <vector>

#include "actors/messages.hpp"

namespace volt {

/// Renders a generation as one JSON object: new_tokens, logits (last prompt
/// position), finish_reason, timings, and all_logits / router_topk when the
/// request asked for them, and "text" (with several sequences also "texts")
/// when the prompt came as text. Floats print as the shortest decimal that
/// reads back as the same float32; NaN and infinities as null.
std::string generation_to_json(const generate_request& req,
                               const generate_result& res,
                               const std::vector<std::string>& texts = {});

/// Renders a generation for a person: tokens, then prefill and decode speed.
std::string generation_to_text(const generate_request& req,
                               const generate_result& res);

} // namespace volt
