#include "engine/scheduler.hpp"

#include <algorithm>
#include <iterator>
#include <string>
#include <utility>

#include "base/error.hpp"
#include "base/log.hpp"
#include "engine/finish_reason.hpp"
#include "engine/kv_plan.hpp"
#include "engine/logprobs.hpp"
#include "model/finite.hpp"

namespace volt {

namespace {

sampling_params sampling_of(const generate_request& req) {
  return sampling_params{req.temperature, req.top_p, req.seed};
}

} // namespace

scheduler::scheduler(const model_config& model, int64_t page_size,
                     int64_t num_pages, scheduler_options options)
  : model_(model), options_(std::move(options)),
    pages_(std::max<int64_t>(page_size, 1), std::max<int64_t>(num_pages, 0)) {
}

// -- requests -----------------------------------------------------------------

caf::error scheduler::validate(const generate_request& req) const {
  auto fail = [](std::string why) {
    return make_volt_error(volt_errc::invalid_request, std::move(why));
  };
  if (req.prompt.empty())
    return fail("prompt: empty (at least one token id is needed)");
  for (size_t i = 0; i < req.prompt.size(); ++i)
    if (req.prompt[i] < 0 || req.prompt[i] >= model_.vocab_size)
      return fail("prompt: token id " + std::to_string(req.prompt[i])
                  + " at index " + std::to_string(i) + " is outside [0, "
                  + std::to_string(model_.vocab_size) + ")");
  if (auto err = check_sampling(sampling_of(req)))
    return err;
  if (req.n < 1 || req.n > max_sequences_per_request)
    return fail("n: " + std::to_string(req.n) + " sequences; must be in [1, "
                + std::to_string(max_sequences_per_request) + "]");
  if (req.logprobs < 0 || req.logprobs > max_logprobs)
    return fail("logprobs: " + std::to_string(req.logprobs)
                + "; must be in [0, " + std::to_string(max_logprobs)
                + "] (0 leaves them out)");
  for (size_t i = 0; i < req.stop_token_ids.size(); ++i)
    if (req.stop_token_ids[i] < 0
        || req.stop_token_ids[i] >= model_.vocab_size)
      return fail("stop_token_ids: token id "
                  + std::to_string(req.stop_token_ids[i]) + " at index "
                  + std::to_string(i) + " is outside [0, "
                  + std::to_string(model_.vocab_size) + ")");
  if (req.id != 0 && find_request(req.id) != nullptr)
    return fail("id: " + std::to_string(req.id)
                + " belongs to a request still in the engine; pick another");
  auto n = static_cast<int64_t>(req.prompt.size());
  if (n > model_.max_position_embeddings)
    return fail("prompt: " + std::to_string(n)
                + " tokens exceed the model's context of "
                + std::to_string(model_.max_position_embeddings) + " tokens");
  // Tokens a sequence may occupy: prompt plus new tokens, within the context.
  auto total = std::min<int64_t>(n + req.max_new_tokens,
                                 model_.max_position_embeddings);
  if (pages_.pages_for(total) > pages_.num_pages())
    return fail("request needs " + std::to_string(pages_.pages_for(total))
                + " KV pages for " + std::to_string(total)
                + " tokens but the pool has "
                + std::to_string(pages_.num_pages()));
  return caf::none;
}

caf::expected<uint64_t> scheduler::enqueue(queued_generation job) {
  if (auto err = validate(job.request))
    return refuse(std::move(err));
  if (queue_.size() >= options_.max_queue)
    return refuse(make_volt_error(volt_errc::queue_full,
                                  "engine: queue full ("
                                    + std::to_string(options_.max_queue)
                                    + " requests waiting); try again later"));
  job.id = job.request.id;
  while (job.id == 0 || find_request(job.id) != nullptr)
    job.id = next_request_id_++;
  auto id = job.id;
  queue_.push_back(std::move(job));
  report_queue();
  return id;
}

caf::error scheduler::refuse(caf::error err) {
  ++refused_;
  if (options_.metrics)
    options_.metrics->request_refused();
  return err;
}

const queued_generation* scheduler::find_request(uint64_t id) const {
  for (const auto& job : queue_)
    if (job.id == id)
      return &job;
  for (const auto* batch : {&running_, &preempted_})
    for (const auto& [seq_id, seq] : *batch)
      if (seq.group->origin.id == id && !seq.group->answered)
        return &seq.group->origin;
  return nullptr;
}

request_group* scheduler::live_group(uint64_t id) {
  for (auto* batch : {&running_, &preempted_})
    for (auto& [seq_id, seq] : *batch)
      if (seq.group->origin.id == id && !seq.group->answered)
        return seq.group.get();
  return nullptr;
}

void scheduler::fail_front(const caf::error& err) {
  auto expired = std::move(queue_.front());
  queue_.pop_front();
  VOLT_WARN("engine", "request failed: " << describe(err));
  replies_.fail(expired, err);
  if (options_.metrics)
    options_.metrics->request_done(
      seconds_between(expired.arrived, engine_clock::now()), false, 0);
  ++failed_;
}

void scheduler::expire_queued(std::chrono::milliseconds limit,
                              const caf::error& err) {
  auto now = engine_clock::now();
  while (!queue_.empty() && now - queue_.front().arrived >= limit)
    fail_front(err);
  report_queue();
}

void scheduler::fail_all(const caf::error& err) {
  step_.clear();
  while (!running_.empty())
    drop_group(running_.begin()->second.group, err);
  while (!preempted_.empty())
    drop_group(preempted_.begin()->second.group, err);
  while (!queue_.empty())
    fail_front(err);
  report_queue();
}

void scheduler::drop_group(std::shared_ptr<request_group> g,
                           const caf::error& err) {
  fail_group(*g, err);
  for (auto* batch : {&running_, &preempted_})
    for (auto i = batch->begin(); i != batch->end();) {
      if (i->second.group != g) {
        ++i;
        continue;
      }
      retire(i->second, batch == &running_, i->first);
      i = batch->erase(i);
    }
}

std::string scheduler::status() const {
  return std::to_string(completed_) + " completed, "
         + std::to_string(cancelled_) + " cancelled, "
         + std::to_string(failed_) + " failed, " + std::to_string(refused_) + " refused, "
         + std::to_string(queue_.size()) + " queued, "
         + std::to_string(running_.size()) + " running, "
         + std::to_string(preempted_.size()) + " preempted ("
         + std::to_string(preemptions_) + " preemptions)";
}

void scheduler::report_queue() {
  if (options_.metrics)
    options_.metrics->queue_depth(waiting());
}

// -- admission ----------------------------------------------------------------

running_sequence scheduler::start_request(queued_generation origin) {
  running_sequence seq;
  seq.group = std::make_shared<request_group>();
  auto& g = *seq.group;
  g.origin = std::move(origin);
  const auto& req = g.request();
  g.unfinished = 1;
  g.started = engine_clock::now();
  auto n = sequences_of(req);
  g.result.sequences.resize(n);
  g.result.finish_reasons.resize(n);
  if (req.logprobs > 0)
    g.result.logprobs.resize(n);
  seq.tokens = req.prompt;
  seq.prompt_len = static_cast<int64_t>(seq.tokens.size());
  seq.sampler = token_sampler{req.seed, 0};
  if (req.return_routing)
    g.routing.assign(static_cast<size_t>(model_.num_hidden_layers
                                         * seq.prompt_len
                                         * model_.num_experts_per_tok),
                     -1);
  if (req.return_all_logits)
    g.all_logits.resize(static_cast<size_t>(seq.prompt_len * model_.vocab_size));
  return seq;
}

void scheduler::admit() {
  // Preempted sequences whose request already failed do not resume.
  for (auto i = preempted_.begin(); i != preempted_.end();) {
    if (i->second.group->answered) {
      retire(i->second, false, i->first);
      i = preempted_.erase(i);
    } else {
      ++i;
    }
  }
  while (running_.size() < options_.max_batch
         && !(queue_.empty() && preempted_.empty())) {
    bool resume = !preempted_.empty();
    auto id = resume ? preempted_.begin()->first : next_sequence_;
    const auto& tokens = resume ? preempted_.begin()->second.tokens
                                : queue_.front().request.prompt;
    // One free page per running sequence stays, so that they can grow
    // without preempting the newcomer at once.
    auto granted = admit_with_headroom(
      pages_, id, tokens, static_cast<int64_t>(tokens.size()),
      static_cast<int64_t>(running_.size()), reuse_prefixes_);
    if (!granted && granted.error() == volt_errc::out_of_pages)
      return; // running sequences release pages as they finish
    if (!granted) {
      // A prompt that fitted at validation always fits an empty pool.
      if (resume) {
        auto i = preempted_.begin();
        fail_group(*i->second.group, granted.error());
        retire(i->second, false, i->first);
        preempted_.erase(i);
      } else {
        auto refused = std::move(queue_.front());
        queue_.pop_front();
        VOLT_WARN("engine", "request refused: " << describe(granted.error()));
        replies_.fail(refused, granted.error());
        if (options_.metrics)
          options_.metrics->request_done(
            seconds_between(refused.arrived, engine_clock::now()), false, 0);
        ++failed_;
      }
      report_queue();
      continue;
    }
    running_sequence seq;
    if (resume) {
      seq = std::move(preempted_.begin()->second);
      preempted_.erase(preempted_.begin());
    } else {
      ++next_sequence_;
      seq = start_request(std::move(queue_.front()));
      queue_.pop_front();
    }
    report_queue();
    const auto& req = seq.request();
    seq.announced = static_cast<int64_t>(seq.tokens.size());
    // Cached pages hold the leading K/V; requests that want logits or
    // routing of every prompt position compute the prompt anyway.
    bool whole_prompt = !seq.group->prefilled
                        && (req.return_all_logits || req.return_routing);
    seq.computed = whole_prompt ? 0 : granted->cached_tokens;
    if (!resume) {
      seq.kv.prefix_hit_tokens = seq.computed;
      seq.kv.pages_shared = seq.computed / pages_.page_size();
    }
    running_.emplace(id, std::move(seq));
  }
}

void scheduler::preempt(uint64_t id) {
  auto i = running_.find(id);
  auto& seq = i->second;
  VOLT_INFO("engine", "preempted sequence "
                        << id << " (" << seq.tokens.size()
                        << " tokens) to free KV pages; it resumes later");
  seq.computed = 0;
  seq.announced = 0;
  ++seq.kv.preemptions;
  ++preemptions_;
  if (options_.metrics)
    options_.metrics->preemption();
  preempted_.emplace(id, std::move(seq));
  running_.erase(i);
}

// -- steps --------------------------------------------------------------------

std::optional<step_request> scheduler::next_step(bool admit_more) {
  if (admit_more)
    admit();
  if (running_.empty())
    return std::nullopt;
  // Rows per sequence: every decode its one row first, then prompt (or
  // resume) chunks in admission order from what the step has left.
  std::map<uint64_t, int64_t> rows;
  auto budget = options_.max_step_rows;
  for (auto& [id, seq] : running_)
    if (static_cast<int64_t>(seq.tokens.size()) - seq.computed == 1
        && budget > 0) {
      rows[id] = 1;
      --budget;
    }
  for (auto& [id, seq] : running_) {
    auto rest = static_cast<int64_t>(seq.tokens.size()) - seq.computed;
    auto n = std::min({rest, options_.prefill_chunk, budget});
    if (rest > 1 && n > 0) {
      rows[id] = n;
      budget -= n;
    }
  }
  std::vector<kv_write> writes;
  for (auto& [id, n] : rows) {
    auto from = running_.at(id).computed;
    writes.push_back(kv_write{id, from, from + n});
  }
  auto plan = plan_kv_step(pages_, writes);
  if (!plan) {
    // The scheduler's own bookkeeping is wrong: fail what would have run.
    VOLT_ERROR("engine", "KV plan: " << describe(plan.error()));
    for (auto& [id, n] : rows)
      step_.push_back(step_entry{id, n, 0});
    fail_step(plan.error());
    return std::nullopt;
  }
  for (auto id : plan->preempted) {
    rows.erase(id);
    preempt(id);
  }
  step_request req;
  for (auto& w : plan->copies) {
    auto& seq = running_.at(w.seq);
    auto n = static_cast<int64_t>(w.copies.size());
    seq.kv.copy_on_write += n;
    seq.kv.pages_shared -= n;
    req.copies.insert(req.copies.end(), w.copies.begin(), w.copies.end());
  }
  auto& b = req.batch;
  step_.clear();
  for (auto& [id, n] : rows) {
    auto& seq = running_.at(id);
    auto& g = *seq.group;
    const auto& r = seq.request();
    step_entry e{id, n, b.size()};
    b.sequences.push_back(
      step_batch::sequence{b.size(), n, pages_.block_table(id), id});
    for (auto pos = seq.computed; pos < seq.computed + n; ++pos) {
      b.token_ids.push_back(seq.tokens[static_cast<size_t>(pos)]);
      b.positions.push_back(static_cast<int32_t>(pos));
    }
    auto end = seq.computed + n;
    bool sampled = end == static_cast<int64_t>(seq.tokens.size());
    auto prompt_rows
      = r.return_all_logits && !g.prefilled
          ? std::max<int64_t>(std::min(end, seq.prompt_len) - seq.computed, 0)
          : 0;
    if (prompt_rows > 0) {
      e.first_logit = static_cast<int64_t>(req.logit_rows.size());
      for (int64_t i = 0; i < prompt_rows; ++i)
        req.logit_rows.push_back(e.first_row + i);
    }
    req.record_routing |= r.return_routing && !g.prefilled;
    if (sampled) {
      auto last = e.first_row + n - 1;
      // The prompt's last logits go into the answer (and forks sample from
      // them); a temperature needs them to sample at all, logprobs to
      // compute them.
      if (!g.prefilled || r.temperature != 0 || r.logprobs > 0) {
        if (prompt_rows < n) {
          req.logit_rows.push_back(last);
          e.sample_logit = static_cast<int64_t>(req.logit_rows.size()) - 1;
        } else {
          e.sample_logit = e.first_logit + prompt_rows - 1;
        }
      }
      if (r.temperature == 0) {
        e.sample_greedy = static_cast<int64_t>(req.greedy_rows.size());
        req.greedy_rows.push_back(last);
      }
    }
    step_.push_back(e);
  }
  if (step_.empty())
    return std::nullopt; // everything planned was preempted
  return req;
}

void scheduler::commit(uint64_t id, running_sequence& seq) {
  std::vector<int32_t> appended(seq.tokens.begin() + seq.announced,
                                seq.tokens.end());
  seq.announced = static_cast<int64_t>(seq.tokens.size());
  // Degraded K/V must not reach later prompts through the prefix cache.
  if (seq.degraded)
    if (auto err = pages_.withhold(id))
      VOLT_ERROR("engine", "KV withhold: " << describe(err));
  if (auto err = pages_.commit(id, seq.computed, appended))
    VOLT_ERROR("engine", "KV commit: " << describe(err));
}

std::string scheduler::advance(running_sequence& seq, const float* logits,
                               int32_t greedy) {
  const auto& req = seq.request();
  if (seq.generated() >= req.max_new_tokens)
    return finish::length;
  // Greedy draws no random number, so the executor's argmax is the
  // sampler's pick.
  auto token = greedy >= 0 ? greedy
                           : seq.sampler.sample(logits, model_.vocab_size,
                                                sampling_of(req));
  seq.tokens.push_back(token);
  if (req.logprobs > 0 && logits != nullptr)
    seq.logprobs.push_back(
      token_logprobs(logits, model_.vocab_size, token, req.logprobs));
  if (!req.ignore_eos && token == model_.eos_token_id)
    return finish::eos;
  const auto& stops = req.stop_token_ids;
  if (std::find(stops.begin(), stops.end(), token) != stops.end())
    return finish::stop;
  if (seq.generated() >= req.max_new_tokens)
    return finish::length;
  if (static_cast<int64_t>(seq.tokens.size()) >= model_.max_position_embeddings)
    return finish::context;
  return {};
}

void scheduler::degrade(running_sequence& seq,
                        const std::vector<uint32_t>& masked) {
  seq.degraded = true;
  auto& experts = seq.group->result.degraded_experts;
  std::vector<uint32_t> merged;
  std::set_union(experts.begin(), experts.end(), masked.begin(), masked.end(),
                 std::back_inserter(merged));
  experts = std::move(merged);
}

void scheduler::finish_step(step_result& result,
                            const std::vector<uint32_t>& masked) {
  if (options_.metrics) {
    options_.metrics->batch_size(step_.size());
    auto s = pages_.stats();
    options_.metrics->kv_pool(s.pages_used, s.pages_total, s.copy_on_write,
                              s.prefix_lookups, s.prefix_hits,
                              s.prefix_hit_tokens, s.evictions);
  }
  const auto vocab = model_.vocab_size;
  const auto k = model_.num_experts_per_tok;
  const auto n_rows = static_cast<int64_t>(
    result.routing.size() / std::max<size_t>(1, model_.num_hidden_layers * k));
  auto entries = std::move(step_);
  step_.clear();
  for (const auto& e : entries) {
    auto found = running_.find(e.id);
    if (found == running_.end())
      continue; // a sibling's broken logits failed its request
    auto& seq = found->second;
    auto& g = *seq.group;
    if (!result.degraded_rows.empty()) {
      auto rows = result.degraded_rows.begin() + e.first_row;
      if (std::any_of(rows, rows + e.n_rows, [](uint8_t d) { return d; }))
        degrade(seq, masked);
    }
    auto from = seq.computed;
    seq.computed += e.n_rows;
    if (!g.prefilled && from < seq.prompt_len) {
      auto n = std::min(seq.computed, seq.prompt_len) - from;
      if (e.first_logit >= 0)
        std::copy_n(result.logits.data() + e.first_logit * vocab, n * vocab,
                    g.all_logits.data() + from * vocab);
      if (seq.request().return_routing && !result.routing.empty())
        for (int64_t l = 0; l < model_.num_hidden_layers; ++l)
          std::copy_n(result.routing.data() + (l * n_rows + e.first_row) * k,
                      n * k,
                      g.routing.data() + (l * seq.prompt_len + from) * k);
    }
    if (e.sample_logit < 0 && e.sample_greedy < 0) {
      commit(e.id, seq);
      continue; // more prompt (or resume) chunks to go
    }
    const float* logits = e.sample_logit >= 0
                            ? result.logits.data() + e.sample_logit * vocab
                            : nullptr;
    int32_t greedy = e.sample_greedy >= 0 ? result.greedy[e.sample_greedy] : -1;
    if (auto err = check_logits(e.id, seq, logits,
                                e.sample_greedy >= 0 && greedy < 0)) {
      drop_group(seq.group, err);
      continue;
    }
    if (!g.prefilled)
      finish_prompt(e.id, seq, logits);
    sample_next(e.id, seq, logits, greedy);
  }
  drop_cancelled();
}

caf::error scheduler::check_logits(uint64_t id, const running_sequence& seq,
                                   const float* logits,
                                   bool greedy_failed) const {
  auto at = logits != nullptr
              ? first_non_finite(logits, static_cast<size_t>(model_.vocab_size))
              : int64_t{-1};
  if (at < 0 && !greedy_failed)
    return caf::none;
  auto what = at >= 0 ? non_finite_name(logits[at]) + " as the logit of token "
                          + std::to_string(at)
                      : std::string{"a NaN or an infinity among the logits"};
  return make_volt_error(
    volt_errc::non_finite,
    "engine: request " + std::to_string(seq.group->origin.id)
      + ": the model computed " + what + " at position "
      + std::to_string(seq.computed - 1) + " (sequence "
      + std::to_string(id) + "); no token can be sampled from it, the "
      + "weights or the activations overflow");
}

void scheduler::sample_next(uint64_t id, running_sequence& seq,
                            const float* logits, int32_t greedy) {
  if (!seq.cancel_reason().empty()) {
    commit(id, seq);
    return; // drop_cancelled ends it
  }
  auto before = seq.generated();
  auto stop = advance(seq, logits, greedy);
  commit(id, seq);
  bool token = seq.generated() > before;
  if (token && seq.degraded) {
    ++seq.group->result.degraded_tokens;
    if (options_.metrics)
      options_.metrics->degraded_token();
  }
  if (token || !stop.empty())
    emit(seq, token, stop);
  if (!stop.empty())
    finish_sequence(id, stop);
}

void scheduler::fail_step(const caf::error& err) {
  auto entries = std::move(step_);
  step_.clear();
  for (const auto& e : entries) {
    auto i = running_.find(e.id);
    if (i == running_.end())
      continue;
    fail_group(*i->second.group, err);
    retire(i->second, true, e.id);
    running_.erase(i);
  }
}

} // namespace volt
