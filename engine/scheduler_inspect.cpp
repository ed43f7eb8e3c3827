// What the scheduler tells an operator: its queue and the requests in it.

#include <algorithm>
#include <map>

#include "engine/scheduler.hpp"

namespace volt {

namespace {

/// A request's entry as its first sequence finds it.
request_entry entry_of(const queued_generation& origin, const char* state,
                       engine_clock::time_point now) {
  request_entry e;
  e.id = origin.id;
  e.state = state;
  e.age_seconds = seconds_between(origin.arrived, now);
  e.prompt_tokens = static_cast<int64_t>(origin.request.prompt.size());
  e.sequences = sequences_of(origin.request);
  e.max_new_tokens = origin.request.max_new_tokens;
  e.streamed = static_cast<bool>(origin.sink);
  return e;
}

} // namespace

void scheduler::report(queue_entry& queue,
                       std::vector<request_entry>& requests,
                       engine_clock::time_point now) const {
  queue.queued = static_cast<int64_t>(queue_.size());
  queue.max_queue = static_cast<int64_t>(options_.max_queue);
  queue.running = static_cast<int64_t>(running_.size());
  queue.preempted = static_cast<int64_t>(preempted_.size());
  queue.max_batch = static_cast<int64_t>(options_.max_batch);
  queue.completed = completed_;
  queue.cancelled = cancelled_;
  queue.failed = failed_;
  queue.refused = refused_;
  queue.preemptions = preemptions_;
  // Sequences of one request share its group; running ones name it running.
  std::map<const request_group*, request_entry> started;
  auto visit = [&](const running_sequence& seq, const char* state) {
    const auto* g = seq.group.get();
    auto i = started.find(g);
    if (i == started.end()) {
      i = started.emplace(g, entry_of(g->origin, state, now)).first;
      // Sequences that already finished keep their tokens in the answer.
      const auto& res = g->result;
      for (size_t k = 0; k < res.finish_reasons.size(); ++k)
        if (!res.finish_reasons[k].empty())
          i->second.generated_tokens
            += static_cast<int64_t>(res.sequences[k].size());
    } else if (std::string{state} == "running") {
      i->second.state = state;
    }
    i->second.generated_tokens += std::max<int64_t>(seq.generated(), 0);
  };
  for (const auto& [id, seq] : running_)
    visit(seq, "running");
  for (const auto& [id, seq] : preempted_)
    visit(seq, "preempted");
  for (auto& [g, entry] : started)
    requests.push_back(std::move(entry));
  for (const auto& job : queue_)
    requests.push_back(entry_of(job, "queued", now));
  std::stable_sort(requests.begin(), requests.end(),
                   [](const request_entry& a, const request_entry& b) {
                     return a.age_seconds > b.age_seconds;
                   });
}

} // namespace volt
