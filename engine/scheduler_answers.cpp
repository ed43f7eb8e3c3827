// The scheduler's answers (prompt done, sequences finished, whole requests
// answered or failed, streamed chunks) and cancellation; the requests,
// admission and steps are in scheduler.cpp.

#include "engine/scheduler.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "base/error.hpp"
#include "base/log.hpp"
#include "engine/finish_reason.hpp"
#include "engine/logprobs.hpp"

namespace volt {

namespace {

/// Sequence 0 of a request computes the prompt that its siblings fork from:
/// cancelled alone, it goes on until the prompt is done.
bool holds_prompt(const running_sequence& seq) {
  const auto& g = *seq.group;
  if (seq.index != 0 || g.prefilled)
    return false;
  for (uint32_t i = 1; i < sequences_of(g.request()); ++i)
    if (g.origin.cancel_reason(i).empty())
      return true;
  return false;
}

/// Marks `sequence` (-1: all) of `origin` cancelled with `why`, skipping
/// sequences that finished (`finished[i]` set); returns how many it marked.
size_t mark_cancelled(queued_generation& origin, int32_t sequence,
                      const std::string& why,
                      const std::vector<std::string>& finished) {
  auto n = sequences_of(origin.request);
  origin.cancelled.resize(n);
  size_t marked = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (sequence >= 0 && static_cast<uint32_t>(sequence) != i)
      continue;
    if (!origin.cancelled[i].empty()
        || (i < finished.size() && !finished[i].empty()))
      continue;
    origin.cancelled[i] = why;
    ++marked;
  }
  return marked;
}

bool all_cancelled(const queued_generation& origin) {
  for (uint32_t i = 0; i < sequences_of(origin.request); ++i)
    if (origin.cancel_reason(i).empty())
      return false;
  return true;
}

} // namespace

// -- answers ------------------------------------------------------------------

void scheduler::finish_prompt(uint64_t id, running_sequence& seq,
                              const float* logits) {
  auto& g = *seq.group;
  const auto& req = g.request();
  const auto vocab = model_.vocab_size;
  g.prefilled = true;
  g.prefill_done = engine_clock::now();
  g.result.last_logits = pack_f32(logits, {vocab});
  if (req.return_all_logits)
    g.result.all_logits = pack_f32(g.all_logits.data(),
                                   {seq.prompt_len, vocab});
  if (req.return_routing)
    g.result.routing = pack_i32(g.routing.data(),
                                {model_.num_hidden_layers, seq.prompt_len,
                                 model_.num_experts_per_tok});
  // Sequences 1..n-1 fork the prompt: they share every page, have their own
  // random stream, and sample their first token from the same logits,
  // before the parent's first token is committed.
  for (uint32_t i = 1; i < req.n; ++i) {
    auto child_id = next_sequence_++;
    if (auto err = pages_.fork(id, child_id)) {
      fail_group(g, err);
      return;
    }
    auto& child = running_[child_id];
    child.group = seq.group;
    child.index = i;
    child.tokens = seq.tokens;
    child.prompt_len = seq.prompt_len;
    child.computed = seq.computed;
    child.announced = seq.announced;
    child.kv.pages_shared
      = static_cast<int64_t>(pages_.block_table(child_id).size());
    child.sampler = token_sampler{req.seed, i};
    child.degraded = seq.degraded;
    ++g.unfinished;
    auto greedy = req.temperature == 0 ? greedy_token(logits, vocab) : -1;
    sample_next(child_id, child, logits, greedy);
  }
}

void scheduler::finish_sequence(uint64_t id, const std::string& why) {
  auto i = running_.find(id);
  record_finish(id, i->second, why);
  retire(i->second, true, id);
  running_.erase(i);
}

void scheduler::record_finish(uint64_t id, running_sequence& seq,
                              const std::string& why) {
  auto& res = seq.group->result;
  res.sequences[seq.index].assign(seq.tokens.begin() + seq.prompt_len,
                                  seq.tokens.end());
  res.finish_reasons[seq.index] = why;
  if (seq.index < res.logprobs.size())
    res.logprobs[seq.index] = std::move(seq.logprobs);
  res.kv.pages_used += static_cast<int64_t>(pages_.block_table(id).size());
  res.kv.pages_shared += std::max<int64_t>(seq.kv.pages_shared, 0);
  res.kv.copy_on_write += seq.kv.copy_on_write;
  res.kv.preemptions += seq.kv.preemptions;
  res.kv.prefix_hit_tokens += seq.kv.prefix_hit_tokens;
}

void scheduler::emit(const running_sequence& seq, bool token,
                     const std::string& finish) {
  generate_chunk c;
  c.sequence = seq.index;
  if (token) {
    c.tokens.push_back(seq.tokens.back());
    if (!seq.logprobs.empty())
      c.logprobs.push_back(seq.logprobs.back());
  }
  c.finish_reason = finish;
  if (!finish.empty())
    c.openai_finish_reason = finish::openai(finish);
  replies_.chunk(seq.group->origin, std::move(c));
}

void scheduler::retire(running_sequence& seq, bool holds_pages, uint64_t id) {
  auto& g = *seq.group;
  --g.unfinished;
  if (g.unfinished == 0 && !g.answered)
    answer_group(g);
  if (holds_pages)
    if (auto err = pages_.release(id))
      VOLT_ERROR("engine", "KV release: " << describe(err));
}

void scheduler::fail_group(request_group& g, const caf::error& err) {
  if (g.answered)
    return;
  VOLT_WARN("engine", "request failed: " << describe(err));
  g.answered = true;
  replies_.fail(g.origin, err);
  if (options_.metrics)
    options_.metrics->request_done(
      seconds_between(g.origin.arrived, engine_clock::now()), false, 0);
  ++failed_;
}

void scheduler::answer_group(request_group& g) {
  const auto& req = g.request();
  auto now = engine_clock::now();
  if (!g.prefilled)
    g.prefill_done = now; // cancelled before its prompt was done
  auto& res = g.result;
  res.prefill_seconds = seconds_between(g.started, g.prefill_done);
  res.decode_seconds = seconds_between(g.prefill_done, now);
  res.kv.page_size = pages_.page_size();
  bool cancelled = false;
  for (uint32_t i = 0; i < res.finish_reasons.size(); ++i) {
    auto& why = res.finish_reasons[i];
    if (why.empty()) {
      // A sequence cancelled before it was forked from the prompt.
      why = g.origin.cancel_reason(i).empty() ? finish::cancelled
                                              : g.origin.cancel_reason(i);
      generate_chunk c;
      c.sequence = i;
      c.finish_reason = why;
      c.openai_finish_reason = finish::openai(why);
      replies_.chunk(g.origin, std::move(c));
    }
    cancelled |= why == finish::cancelled;
    res.openai_finish_reasons.push_back(finish::openai(why));
  }
  res.new_tokens = res.sequences.front();
  res.finish_reason = res.finish_reasons.front();
  res.prompt_tokens = static_cast<int64_t>(req.prompt.size());
  for (const auto& s : res.sequences)
    res.completion_tokens += static_cast<int64_t>(s.size());
  if (req.n <= 1) {
    res.sequences.clear();
    res.finish_reasons.clear();
  }
  if (options_.metrics)
    options_.metrics->request_done(seconds_between(g.origin.arrived, now), true,
                                   static_cast<size_t>(res.completion_tokens));
  g.answered = true;
  replies_.answer(g.origin, std::move(res));
  ++(cancelled ? cancelled_ : completed_);
}

// -- cancellation -------------------------------------------------------------

caf::expected<bool> scheduler::cancel(const cancel_request& c) {
  auto why = c.reason.empty() ? finish::cancelled : c.reason;
  if (why != finish::cancelled && why != finish::stop)
    return make_volt_error(volt_errc::invalid_request,
                           "cancel: reason '" + c.reason
                             + "' (must be \"cancelled\" or \"stop\")");
  auto check_sequence = [&](const generate_request& req) -> caf::error {
    if (c.sequence < -1
        || (c.sequence >= 0
            && static_cast<uint32_t>(c.sequence) >= sequences_of(req)))
      return make_volt_error(volt_errc::invalid_request,
                             "cancel: sequence " + std::to_string(c.sequence)
                               + " of request " + std::to_string(c.id)
                               + ", which has "
                               + std::to_string(sequences_of(req))
                               + " (-1 cancels all)");
    return caf::none;
  };
  for (auto i = queue_.begin(); i != queue_.end(); ++i) {
    if (i->id != c.id)
      continue;
    if (auto err = check_sequence(i->request))
      return err;
    bool marked = mark_cancelled(*i, c.sequence, why, {}) > 0;
    if (all_cancelled(*i)) {
      auto job = std::move(*i);
      queue_.erase(i);
      report_queue();
      answer_unstarted(std::move(job));
    }
    return marked;
  }
  auto* g = live_group(c.id);
  if (g == nullptr)
    return false;
  if (auto err = check_sequence(g->request()))
    return err;
  bool marked
    = mark_cancelled(g->origin, c.sequence, why, g->result.finish_reasons) > 0;
  drop_cancelled();
  return marked;
}

std::vector<uint64_t> scheduler::cancel_sink(const caf::actor_addr& sink) {
  std::vector<uint64_t> ids;
  auto add = [&](const queued_generation& origin) {
    if (origin.sink && origin.sink.address() == sink
        && std::find(ids.begin(), ids.end(), origin.id) == ids.end())
      ids.push_back(origin.id);
  };
  for (const auto& job : queue_)
    add(job);
  for (const auto* batch : {&running_, &preempted_})
    for (const auto& [id, seq] : *batch)
      if (!seq.group->answered)
        add(seq.group->origin);
  for (auto id : ids)
    cancel(cancel_request{id, finish::cancelled, -1});
  return ids;
}

void scheduler::answer_unstarted(queued_generation job) {
  auto seq = start_request(std::move(job));
  seq.group->unfinished = 0;
  answer_group(*seq.group);
}

bool scheduler::in_step(uint64_t id) const {
  return std::any_of(step_.begin(), step_.end(),
                     [id](const step_entry& e) { return e.id == id; });
}

void scheduler::drop_cancelled() {
  auto droppable = [this](uint64_t id, const running_sequence& seq) {
    return !seq.group->answered && !seq.cancel_reason().empty()
           && !in_step(id) && !holds_prompt(seq);
  };
  std::vector<uint64_t> ids;
  for (const auto& [id, seq] : running_)
    if (droppable(id, seq))
      ids.push_back(id);
  for (auto id : ids) {
    auto& seq = running_.at(id);
    auto why = seq.cancel_reason();
    emit(seq, false, why);
    finish_sequence(id, why);
  }
  // Preempted sequences hold no pages.
  for (auto i = preempted_.begin(); i != preempted_.end();) {
    auto& seq = i->second;
    if (!droppable(i->first, seq)) {
      ++i;
      continue;
    }
    auto why = seq.cancel_reason();
    emit(seq, false, why);
    record_finish(i->first, seq, why);
    retire(seq, false, i->first);
    i = preempted_.erase(i);
  }
  report_queue();
}

} // namespace volt
