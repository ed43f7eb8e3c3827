// The engine's requests: admission and resumption through the KV page
// manager, preemption, and the answer of a request once all its sequences
// have finished (or the first error).

#include <algorithm>
#include <string>
#include <utility>

#include "actors/engine_internal.hpp"
#include "base/error.hpp"
#include "base/log.hpp"

namespace volt::engine_detail {

namespace {

/// Delivers the request's answer once its last sequence has finished.
void answer_group(engine_state& st, request_group& g) {
  const auto& req = g.request();
  auto now = clock_type::now();
  auto& res = g.result;
  res.prefill_seconds = seconds_between(g.started, g.prefill_done);
  res.decode_seconds = seconds_between(g.prefill_done, now);
  res.kv.page_size = st.options.page_size;
  res.new_tokens = res.sequences.front();
  res.finish_reason = res.finish_reasons.front();
  size_t generated = 0;
  for (const auto& s : res.sequences)
    generated += s.size();
  if (req.n <= 1) {
    res.sequences.clear();
    res.finish_reasons.clear();
  }
  if (st.options.metrics)
    st.options.metrics->request_done(seconds_between(g.origin.arrived, now),
                                     true, generated);
  g.answered = true;
  g.origin.promise.deliver(std::move(res));
  ++st.completed;
}

/// Builds sequence 0 of a queued request.
running_sequence start_request(engine_state& st, queued_generation origin) {
  const auto& cfg = st.weights->config;
  running_sequence seq;
  seq.group = std::make_shared<request_group>();
  auto& g = *seq.group;
  g.origin = std::move(origin);
  const auto& req = g.request();
  g.unfinished = 1;
  g.started = clock_type::now();
  auto n = std::max<uint32_t>(req.n, 1);
  g.result.sequences.resize(n);
  g.result.finish_reasons.resize(n);
  seq.tokens = req.prompt;
  seq.prompt_len = static_cast<int64_t>(seq.tokens.size());
  seq.sampler = token_sampler{req.seed, 0};
  if (req.return_routing)
    g.routing.assign(static_cast<size_t>(cfg.num_hidden_layers * seq.prompt_len
                                         * cfg.num_experts_per_tok),
                     -1);
  if (req.return_all_logits)
    g.all_logits.resize(static_cast<size_t>(seq.prompt_len * cfg.vocab_size));
  return seq;
}

/// Drops preempted sequences whose request already failed.
void drop_orphans(engine_state& st) {
  for (auto i = st.preempted.begin(); i != st.preempted.end();) {
    if (i->second.group->answered) {
      retire(st, i->second, false, i->first);
      i = st.preempted.erase(i);
    } else {
      ++i;
    }
  }
}

} // namespace

/// Answers the request with `err` unless it was answered already.
void fail_group(engine_state& st, request_group& g, const caf::error& err) {
  if (g.answered)
    return;
  VOLT_WARN("engine", "request failed: " << describe(err));
  g.answered = true;
  g.origin.promise.deliver(err);
  if (st.options.metrics)
    st.options.metrics->request_done(
      seconds_between(g.origin.arrived, clock_type::now()), false, 0);
  ++st.failed;
}

/// A sequence leaves the engine (finished, failed or dropped): its group
/// counts it, answers when it was the last, and its pages go back.
void retire(engine_state& st, running_sequence& seq, bool holds_pages,
            uint64_t id) {
  auto& g = *seq.group;
  --g.unfinished;
  if (g.unfinished == 0 && !g.answered)
    answer_group(st, g);
  if (holds_pages)
    st.pending_releases.push_back(id);
}

/// Moves a sequence the page manager preempted out of the batch: it resumes
/// later, recomputing its tokens (the prefix cache may still hold them).
void preempt(engine_state& st, uint64_t id) {
  auto i = st.running.find(id);
  auto& seq = i->second;
  VOLT_INFO("engine", "preempted sequence "
                        << id << " (" << seq.tokens.size()
                        << " tokens) to free KV pages; it resumes later");
  seq.block_table.clear();
  seq.computed = 0;
  seq.announced = 0;
  ++seq.kv.preemptions;
  ++st.preemptions;
  if (st.options.metrics)
    st.options.metrics->preemption();
  st.preempted.emplace(id, std::move(seq));
  st.running.erase(i);
}

/// Moves the next sequence into the running batch when there is room: a
/// preempted sequence first (oldest first), else the next queued request.
/// The page manager reserves pages for its tokens so far, reusing cached
/// prompt pages, and keeps one free page per running sequence as headroom so
/// that the running batch can grow. Asynchronous; calls `schedule` again once
/// the manager answered.
void admit(engine_pointer self) {
  auto& st = self->state;
  if (!st.pool.missing().empty()) {
    schedule_tick(self);
    return;
  }
  drop_orphans(st);
  if ((st.queue.empty() && st.preempted.empty())
      || st.running.size() >= st.options.max_batch || st.admission_blocked)
    return;
  bool resume = !st.preempted.empty();
  auto id = resume ? st.preempted.begin()->first : st.next_sequence++;
  const auto& tokens = resume ? st.preempted.begin()->second.tokens
                              : st.queue.front().request.prompt;
  st.admitting = true;
  self
    ->request(st.kv, caf::infinite,
              kv_admit{id, tokens, static_cast<int64_t>(tokens.size()),
                       static_cast<int64_t>(st.running.size())})
    .then(
      [self, id, resume](kv_admission& granted) {
        auto& st = self->state;
        st.admitting = false;
        running_sequence seq;
        if (resume) {
          seq = std::move(st.preempted.begin()->second);
          st.preempted.erase(st.preempted.begin());
        } else {
          seq = start_request(st, std::move(st.queue.front()));
          st.queue.pop_front();
        }
        report_queue(st);
        const auto& req = seq.request();
        seq.block_table = std::move(granted.block_table);
        seq.announced = static_cast<int64_t>(seq.tokens.size());
        // Cached pages hold the leading K/V; requests that want logits or
        // routing of every prompt position compute the prompt anyway.
        bool whole_prompt = !seq.group->prefilled
                            && (req.return_all_logits || req.return_routing);
        seq.computed = whole_prompt ? 0 : granted.cached_tokens;
        if (!resume) {
          seq.kv.prefix_hit_tokens = seq.computed;
          seq.kv.pages_shared = seq.computed / st.options.page_size;
        }
        st.running.emplace(id, std::move(seq));
        schedule(self);
      },
      [self](caf::error& err) {
        auto& st = self->state;
        st.admitting = false;
        if (err == volt_errc::out_of_pages) {
          // Waits for running sequences to release pages.
          st.admission_blocked = true;
          schedule(self);
          return;
        }
        if (!st.preempted.empty()) {
          // Cannot happen for a sequence that fitted before; fail its request.
          auto i = st.preempted.begin();
          fail_group(st, *i->second.group, err);
          retire(st, i->second, false, i->first);
          st.preempted.erase(i);
        } else {
          auto refused = std::move(st.queue.front());
          st.queue.pop_front();
          VOLT_WARN("engine", "request refused: " << describe(err));
          refused.promise.deliver(err);
          ++st.failed;
        }
        report_queue(st);
        schedule(self);
      });
}

void report_queue(engine_state& st) {
  if (st.options.metrics)
    st.options.metrics->queue_depth(st.queue.size() + st.preempted.size());
}

void notify_drained(engine_state& st) {
  if (!st.running.empty() || !st.queue.empty() || !st.preempted.empty())
    return;
  for (auto& p : st.drain_waiters)
    p.deliver(true);
  st.drain_waiters.clear();
}

} // namespace volt::engine_detail
