#pragma once

#include <variant>
#include <vector>

#include "actors/stream_messages.hpp"
#include "actors/type_ids.hpp"
#include "caf/error.hpp"
#include "engine/sequence.hpp"

namespace volt {

/// A message for a streamed request's sink.
struct sink_message {
  stream_sink_actor sink;
  std::variant<generate_chunk, generate_end> content;
};

/// Where the scheduler's answers go. Answers to requests sent with
/// generate_atom are delivered to their promises at once; a streamed
/// request's chunks and end wait here, in order, until the engine actor takes
/// and sends them: it sends them as itself (CAF keeps one sender's messages
/// to one receiver in order) and monitors the sinks while their requests
/// live, which a plain class cannot do.
class reply_outbox {
public:
  /// The request's whole answer.
  void answer(queued_generation& origin, generate_result result);

  /// The request failed with `err`.
  void fail(queued_generation& origin, const caf::error& err);

  /// A chunk of a streamed request (nothing for a request that is not
  /// streamed).
  void chunk(const queued_generation& origin, generate_chunk c);

  /// Messages since the last call, in order.
  std::vector<sink_message> take();

private:
  std::vector<sink_message> pending_;
};

} // namespace volt
