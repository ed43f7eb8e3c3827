#pragma once

// Messages of streamed generation and cancellation. A client submits a
// request with `stream_atom` and a sink actor (actors/type_ids.hpp:
// stream_sink_actor); the engine answers the submit with the request's id and
// sends the sink, per step, one `generate_chunk` per sequence that produced a
// token or stopped, then one `generate_end`. Any request, streamed or not, can
// be ended early with `cancel_atom` and a `cancel_request`.

#include <cstdint>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "caf/error.hpp"
#include "caf/meta/type_name.hpp"

namespace volt {

/// What one engine step produced for one sequence of a streamed request.
/// Chunks of one sequence arrive in order; every sequence's last chunk, and
/// only that one, has a finish reason.
struct generate_chunk {
  /// The request's id (the one the submit answered with).
  uint64_t id = 0;
  /// Which of the request's `n` sequences, in [0, n).
  uint32_t sequence = 0;
  /// The new tokens, in order: one per step today; none in a chunk that only
  /// says the sequence stopped (cancelled, or max_new_tokens = 0).
  std::vector<int32_t> tokens;
  /// One entry per token when the request asked for logprobs; else empty.
  std::vector<token_logprob> logprobs;
  /// Empty while the sequence goes on; else why it stopped, in Volt's words
  /// (generate_result::finish_reason) and in OpenAI's
  /// (generate_result::openai_finish_reasons).
  std::string finish_reason;
  std::string openai_finish_reason;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, generate_chunk& x) {
  return f(caf::meta::type_name("volt.generate_chunk"), x.id, x.sequence,
           x.tokens, x.logprobs, x.finish_reason, x.openai_finish_reason);
}

/// The last message of a streamed request, after every chunk.
struct generate_end {
  uint64_t id = 0;
  /// Set when the request failed after its submit was accepted (e.g. an
  /// expert lost its last host); `result` is then empty.
  caf::error error;
  /// The whole answer, as a non-streamed request gets it: every sequence's
  /// tokens, finish reasons, logprobs, usage and timings.
  generate_result result;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, generate_end& x) {
  return f(caf::meta::type_name("volt.generate_end"), x.id, x.error, x.result);
}

/// Ends sequences of a request at the engine's next step boundary: their KV
/// pages are freed, their tokens so far stay in the answer, and they finish
/// with `reason`. Naming an unknown or answered request does nothing.
struct cancel_request {
  /// generate_request::id, or the id a streamed submit answered with.
  uint64_t id = 0;
  /// "cancelled" (the client gave up or went away; also when empty) or
  /// "stop" (the client saw a stop string in the text).
  std::string reason = "cancelled";
  /// The sequence to end, in [0, n); -1 ends all of the request's sequences
  /// (with n > 1, one sequence can hit a stop string while the others go on).
  int32_t sequence = -1;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cancel_request& x) {
  return f(caf::meta::type_name("volt.cancel_request"), x.id, x.reason,
           x.sequence);
}

} // namespace volt
