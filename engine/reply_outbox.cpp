#include "engine/reply_outbox.hpp"

#include <utility>

namespace volt {

void reply_outbox::answer(queued_generation& origin, generate_result result) {
  if (!origin.sink) {
    origin.promise.deliver(std::move(result));
    return;
  }
  generate_end end;
  end.id = origin.id;
  end.result = std::move(result);
  pending_.push_back(sink_message{origin.sink, std::move(end)});
}

void reply_outbox::fail(queued_generation& origin, const caf::error& err) {
  if (!origin.sink) {
    origin.promise.deliver(err);
    return;
  }
  generate_end end;
  end.id = origin.id;
  end.error = err;
  pending_.push_back(sink_message{origin.sink, std::move(end)});
}

void reply_outbox::chunk(const queued_generation& origin, generate_chunk c) {
  if (!origin.sink)
    return;
  c.id = origin.id;
  pending_.push_back(sink_message{origin.sink, std::move(c)});
}

std::vector<sink_message> reply_outbox::take() {
  return std::exchange(pending_, {});
}

} // namespace volt
