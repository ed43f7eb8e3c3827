#pragma once

#include <string>

#include "actors/stream_messages.hpp"

namespace volt {

/// Renders a streamed chunk for a person, one line per token and one when
/// the sequence stops:
///   sequence 0: 170
///   sequence 0: 288 logprob -0.0123 top 288 -0.0123, 170 -4.5
///   sequence 0 finished: length
std::string chunk_to_text(const generate_chunk& c);

} // namespace volt
