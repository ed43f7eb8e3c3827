#include "actors/engine.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "actors/engine_internal.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "gpu/cpu/cpu_ops.hpp"

namespace volt {

namespace engine_detail {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

/// Tokens a sequence may occupy: prompt plus new tokens, within the context.
int64_t sequence_budget(const model_config& cfg, const generate_request& req) {
  return std::min<int64_t>(static_cast<int64_t>(req.prompt.size())
                             + req.max_new_tokens,
                           cfg.max_position_embeddings);
}

sampling_params sampling_of(const generate_request& req) {
  return sampling_params{req.temperature, req.top_p, req.seed};
}

/// Checks a request against the model and the pool before it is queued.
caf::error validate_request(const engine_state& st,
                            const generate_request& req) {
  const auto& cfg = st.weights->config;
  auto fail = [](std::string why) {
    return make_volt_error(volt_errc::invalid_request, std::move(why));
  };
  if (req.prompt.empty())
    return fail("prompt: empty (at least one token id is needed)");
  for (size_t i = 0; i < req.prompt.size(); ++i)
    if (req.prompt[i] < 0 || req.prompt[i] >= cfg.vocab_size)
      return fail("prompt: token id " + std::to_string(req.prompt[i])
                  + " at index " + std::to_string(i) + " is outside [0, "
                  + std::to_string(cfg.vocab_size) + ")");
  if (auto err = check_sampling(sampling_of(req)))
    return err;
  auto n = static_cast<int64_t>(req.prompt.size());
  if (n > cfg.max_position_embeddings)
    return fail("prompt: " + std::to_string(n)
                + " tokens exceed the model's context of "
                + std::to_string(cfg.max_position_embeddings) + " tokens");
  auto total = sequence_budget(cfg, req);
  if (st.cache->pages_for(total) > st.cache->num_pages())
    return fail("request needs " + std::to_string(st.cache->pages_for(total))
                + " KV pages for " + std::to_string(total)
                + " tokens but the pool has "
                + std::to_string(st.cache->num_pages()));
  return caf::none;
}

void report_queue(engine_state& st) {
  if (st.options.metrics)
    st.options.metrics->queue_depth(st.queue.size());
}

/// Answers every drain waiter once nothing is queued or running.
void notify_drained(engine_state& st) {
  if (!st.running.empty() || !st.queue.empty())
    return;
  for (auto& p : st.drain_waiters)
    p.deliver(true);
  st.drain_waiters.clear();
}

void schedule(engine_pointer self);

/// Ends a sequence: answers its client and hands its pages back.
void finish_sequence(engine_pointer self, uint64_t id, caf::error err) {
  auto& st = self->state;
  auto i = st.running.find(id);
  auto& seq = i->second;
  auto now = clock_type::now();
  if (err) {
    VOLT_WARN("engine", "request failed: " << describe(err));
    seq.origin.promise.deliver(err);
    ++st.failed;
  } else {
    seq.result.prefill_seconds = seconds_between(seq.started, seq.prefill_done);
    seq.result.decode_seconds = seconds_between(seq.prefill_done, now);
    seq.result.kv.page_size = st.options.page_size;
    seq.result.kv.pages_used = static_cast<int64_t>(seq.block_table.size());
    seq.origin.promise.deliver(std::move(seq.result));
    ++st.completed;
  }
  if (st.options.metrics)
    st.options.metrics->request_done(
      seconds_between(seq.origin.arrived, now), !err,
      err ? 0 : seq.tokens.size() - seq.prompt_len);
  st.running.erase(i);
  self->request(st.kv, caf::infinite, kv_release_atom_v, id)
    .then(
      [self](int64_t) {
        // Pages are free again: a blocked admission may fit now.
        if (std::exchange(self->state.admission_blocked, false))
          schedule(self);
      },
      [](caf::error& err) {
        VOLT_ERROR("engine", "releasing KV pages: " << describe(err));
      });
}

/// Schedules the timer that expires requests waiting on missing experts.
void schedule_tick(engine_pointer self) {
  auto& st = self->state;
  if (st.tick_scheduled || st.queue.empty())
    return;
  st.tick_scheduled = true;
  auto delay = std::min<std::chrono::milliseconds>(
    st.options.ready_timeout / 4, std::chrono::milliseconds{250});
  self->delayed_send(self, std::max(delay, std::chrono::milliseconds{1}),
                     tick_atom_v);
}

/// Moves the next queued request into the running batch when there is room:
/// a batch slot and KV pages for its whole budget from the page manager (so a
/// running sequence never runs out of pages), reusing cached prompt pages.
/// Asynchronous; calls `schedule` again once the manager answered.
void admit(engine_pointer self) {
  auto& st = self->state;
  const auto& cfg = st.weights->config;
  if (!st.pool.missing().empty()) {
    schedule_tick(self);
    return;
  }
  if (st.queue.empty() || st.running.size() >= st.options.max_batch
      || st.admission_blocked)
    return;
  auto id = st.next_sequence++;
  auto& next = st.queue.front();
  st.admitting = true;
  self
    ->request(st.kv, caf::infinite,
              kv_admit{id, next.request.prompt,
                       sequence_budget(cfg, next.request)})
    .then(
      [self, id](kv_admission& granted) {
        auto& st = self->state;
        const auto& cfg = st.weights->config;
        st.admitting = false;
        running_sequence seq;
        seq.origin = std::move(st.queue.front());
        st.queue.pop_front();
        report_queue(st);
        const auto& req = seq.origin.request;
        seq.block_table = std::move(granted.block_table);
        seq.tokens = req.prompt;
        seq.prompt_len = static_cast<int64_t>(seq.tokens.size());
        seq.announced = seq.prompt_len;
        // Cached pages hold the prompt's leading K/V; requests that want
        // logits or routing of every prompt position compute them anyway.
        if (!req.return_all_logits && !req.return_routing)
          seq.computed = granted.cached_tokens;
        seq.result.kv.prefix_hit_tokens = seq.computed;
        seq.result.kv.pages_shared = seq.computed / st.options.page_size;
        seq.started = clock_type::now();
        seq.sampler = token_sampler{req.seed, 0};
        if (req.return_routing)
          seq.routing.assign(static_cast<size_t>(cfg.num_hidden_layers
                                                 * seq.prompt_len
                                                 * cfg.num_experts_per_tok),
                             -1);
        if (req.return_all_logits)
          seq.all_logits.resize(
            static_cast<size_t>(seq.prompt_len * cfg.vocab_size));
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
        auto refused = std::move(st.queue.front());
        st.queue.pop_front();
        VOLT_WARN("engine", "request refused: " << describe(err));
        refused.promise.deliver(err);
        ++st.failed;
        schedule(self);
      });
}

/// Tells the page manager how far `seq` got: K/V of its first `computed`
/// tokens exist, and which tokens were sampled since the last report. Full
/// pages then enter the prefix cache. Sent before any later write or release
/// of the sequence, so the manager sees them in order.
void commit_progress(engine_pointer self, uint64_t id, running_sequence& seq) {
  kv_commit msg{id, seq.computed,
                std::vector<int32_t>(seq.tokens.begin() + seq.announced,
                                     seq.tokens.end())};
  seq.announced = static_cast<int64_t>(seq.tokens.size());
  self->request(self->state.kv, caf::infinite, std::move(msg))
    .then([](int64_t) {},
          [](caf::error& err) {
            VOLT_ERROR("engine", "KV commit: " << describe(err));
          });
}

/// Copies K and V of `src` to `dst` in every layer (copy-on-write).
void copy_page(kv_cache& cache, int64_t layers, int32_t src, int32_t dst) {
  for (int64_t l = 0; l < layers; ++l) {
    auto pages = cache.layer(l);
    auto n = static_cast<size_t>(pages.page_stride());
    std::copy_n(pages.k + src * pages.page_stride(), n,
                pages.k + dst * pages.page_stride());
    std::copy_n(pages.v + src * pages.page_stride(), n,
                pages.v + dst * pages.page_stride());
  }
}

/// Builds the next step from every running sequence: a prompt chunk while it
/// prefills, else its last token. First asks the page manager where each
/// sequence may write (copy-on-write of shared pages), then runs the layers.
void begin_step(engine_pointer self) {
  auto& st = self->state;
  auto step = std::make_unique<engine_step>();
  auto& b = step->batch;
  for (auto& [id, seq] : st.running) {
    int64_t from = seq.computed;
    int64_t to = seq.computed < seq.prompt_len
                   ? std::min(seq.prompt_len,
                              seq.computed + st.options.prefill_chunk)
                   : static_cast<int64_t>(seq.tokens.size());
    b.sequences.push_back(
      step_batch::sequence{b.size(), to - from, &seq.block_table});
    for (int64_t pos = from; pos < to; ++pos) {
      b.token_ids.push_back(seq.tokens[static_cast<size_t>(pos)]);
      b.positions.push_back(static_cast<int32_t>(pos));
    }
    step->sequence_ids.push_back(id);
  }
  st.step = std::move(step);
  st.planning = true;
  auto pending = std::make_shared<size_t>(st.step->sequence_ids.size());
  auto* step_id = st.step.get();
  for (size_t i = 0; i < step_id->sequence_ids.size(); ++i) {
    auto id = step_id->sequence_ids[i];
    const auto& span = step_id->batch.sequences[i];
    auto from = static_cast<int64_t>(
      step_id->batch.positions[static_cast<size_t>(span.first_row)]);
    self->request(st.kv, caf::infinite, kv_write{id, from, from + span.n_rows})
      .then(
        [self, step_id, id, pending](kv_write_plan& plan) {
          auto& st = self->state;
          if (st.step.get() != step_id)
            return;
          auto& seq = st.running.at(id);
          for (size_t c = 0; c + 1 < plan.copies.size(); c += 2)
            copy_page(*st.cache, st.weights->config.num_hidden_layers,
                      plan.copies[c], plan.copies[c + 1]);
          seq.result.kv.copy_on_write
            += static_cast<int64_t>(plan.copies.size() / 2);
          seq.block_table = std::move(plan.block_table);
          if (--*pending > 0)
            return;
          st.planning = false;
          embed(*st.weights, st.step->batch, st.step->hidden);
          run_layer(self, 0);
        },
        [self, step_id](caf::error& err) {
          auto& st = self->state;
          if (st.step.get() != step_id)
            return;
          st.planning = false;
          fail_step(self, err);
        });
  }
}

/// Starts a step unless one runs or nothing can run.
void schedule(engine_pointer self) {
  auto& st = self->state;
  if (st.step || st.admitting)
    return;
  admit(self);
  if (st.admitting)
    return; // schedule runs again with the manager's answer
  if (!st.running.empty())
    begin_step(self);
  else
    notify_drained(st);
}

/// Picks the next token of `seq` from the logits of its last row.
std::string advance(const model_config& cfg, running_sequence& seq,
                    const float* logits) {
  const auto& req = seq.origin.request;
  if (seq.result.new_tokens.size() >= req.max_new_tokens)
    return "length";
  auto token = seq.sampler.sample(logits, cfg.vocab_size, sampling_of(req));
  seq.result.new_tokens.push_back(token);
  seq.tokens.push_back(token);
  if (!req.ignore_eos && token == cfg.eos_token_id)
    return "eos";
  if (seq.result.new_tokens.size() >= req.max_new_tokens)
    return "length";
  if (static_cast<int64_t>(seq.tokens.size()) >= cfg.max_position_embeddings)
    return "context";
  return {};
}

/// Expires requests that waited longer than ready_timeout for missing
/// experts.
void expire_waiting(engine_pointer self) {
  auto& st = self->state;
  st.tick_scheduled = false;
  auto missing = st.pool.missing();
  if (missing.empty())
    return schedule(self);
  auto now = clock_type::now();
  while (!st.queue.empty()
         && now - st.queue.front().arrived >= st.options.ready_timeout) {
    auto expired = std::move(st.queue.front());
    st.queue.pop_front();
    auto err = missing_experts_error(
      missing, " after waiting "
                 + std::to_string(st.options.ready_timeout.count()) + " ms");
    VOLT_WARN("engine", "request failed: " << describe(err));
    expired.promise.deliver(err);
    if (st.options.metrics)
      st.options.metrics->request_done(seconds_between(expired.arrived, now),
                                       false, 0);
    ++st.failed;
  }
  report_queue(st);
  schedule_tick(self);
  notify_drained(st);
}

void add_host(engine_pointer self, expert_host host) {
  auto& st = self->state;
  self->monitor(host.handle);
  auto name = host.name;
  auto count = host.experts.size();
  auto [id, ignored] = st.pool.add(std::move(host));
  if (!ignored.empty())
    VOLT_WARN("engine", name << " hosts experts outside the model (ignored): "
                             << expert_pool::render(ignored));
  VOLT_INFO("engine",
            "expert host " << name << " joined with " << count << " experts");
  if (st.options.metrics)
    st.options.metrics->live_workers(st.pool.remote_count());
  if (st.pool.missing().empty()) {
    for (auto& p : st.ready_waiters)
      p.deliver(true);
    st.ready_waiters.clear();
  }
  schedule(self);
}

std::string status_line(const engine_state& st) {
  auto missing = st.pool.missing();
  return "engine: " + std::to_string(st.completed) + " completed, "
         + std::to_string(st.failed) + " failed, " + std::to_string(st.refused)
         + " refused, " + std::to_string(st.queue.size()) + " queued, "
         + std::to_string(st.running.size()) + " running, "
         + std::to_string(st.pool.hosts().size()) + " expert hosts"
         + (missing.empty()
              ? std::string{}
              : " (no host for experts " + expert_pool::render(missing) + ")")
         + ", KV pool " + std::to_string(st.cache->num_pages()) + " pages";
}

} // namespace

caf::error missing_experts_error(const std::vector<uint32_t>& missing,
                                 const std::string& context) {
  return make_volt_error(volt_errc::missing_expert,
                         "no live host for experts "
                           + expert_pool::render(missing) + context);
}

void fail_step(engine_pointer self, const caf::error& err) {
  auto& st = self->state;
  if (!st.step)
    return;
  if (st.step->dispatch)
    for (auto& [id, part] : st.step->dispatch->parts)
      if (st.pool.hosts().count(part.host) > 0)
        st.pool.host(part.host).inflight_rows -= part.rows;
  auto step = std::move(st.step);
  for (auto id : step->sequence_ids)
    finish_sequence(self, id, err);
  schedule(self);
}

/// Reports the batch size and the page pool's counters to the metrics.
void report_kv(engine_pointer self, size_t batch) {
  auto& st = self->state;
  if (!st.options.metrics)
    return;
  st.options.metrics->batch_size(batch);
  self->request(st.kv, caf::infinite, kv_stats_atom_v)
    .then(
      [self](const page_table_stats& s) {
        if (auto& m = self->state.options.metrics)
          m->kv_pool(s.pages_used, s.pages_total, s.copy_on_write,
                     s.prefix_lookups, s.prefix_hits, s.prefix_hit_tokens,
                     s.evictions);
      },
      [](caf::error&) {});
}

void finish_step(engine_pointer self) {
  auto& st = self->state;
  const auto& cfg = st.weights->config;
  auto step = std::move(st.step);
  report_kv(self, step->sequence_ids.size());
  const auto& b = step->batch;
  // Rows whose logits are needed: every prompt row of sequences that asked for
  // all logits, and the last row of each sequence that reaches its end of
  // prompt or decodes.
  std::vector<int64_t> rows;
  std::vector<int64_t> last_row_index(b.sequences.size(), -1);
  for (size_t i = 0; i < b.sequences.size(); ++i) {
    const auto& span = b.sequences[i];
    const auto& seq = st.running.at(step->sequence_ids[i]);
    auto end = seq.computed + span.n_rows;
    if (seq.origin.request.return_all_logits && seq.computed < seq.prompt_len)
      for (int64_t r = 0; r < span.n_rows - 1; ++r)
        rows.push_back(span.first_row + r);
    if (end >= seq.prompt_len || seq.origin.request.return_all_logits) {
      last_row_index[i] = static_cast<int64_t>(rows.size());
      rows.push_back(span.first_row + span.n_rows - 1);
    }
  }
  std::vector<float> logits;
  if (!rows.empty())
    final_logits(*st.weights, step->hidden, rows, logits);
  const auto vocab = cfg.vocab_size;
  size_t next_row = 0;
  for (size_t i = 0; i < b.sequences.size(); ++i) {
    const auto& span = b.sequences[i];
    auto id = step->sequence_ids[i];
    auto& seq = st.running.at(id);
    auto from = seq.computed;
    seq.computed += span.n_rows;
    if (seq.origin.request.return_all_logits && from < seq.prompt_len) {
      auto n = std::min(span.n_rows, seq.prompt_len - from);
      std::copy_n(logits.data() + next_row * vocab, n * vocab,
                  seq.all_logits.data() + from * vocab);
      next_row += static_cast<size_t>(n);
    } else if (last_row_index[i] >= 0) {
      ++next_row;
    }
    if (seq.computed < seq.prompt_len) {
      commit_progress(self, id, seq);
      continue; // more prompt chunks to go
    }
    const float* last = logits.data() + last_row_index[i] * vocab;
    if (from < seq.prompt_len) {
      // This step finished the prompt.
      seq.result.last_logits = pack_f32(last, {vocab});
      if (seq.origin.request.return_all_logits)
        seq.result.all_logits = pack_f32(seq.all_logits.data(),
                                         {seq.prompt_len, vocab});
      if (seq.origin.request.return_routing)
        seq.result.routing = pack_i32(seq.routing.data(),
                                      {cfg.num_hidden_layers, seq.prompt_len,
                                       cfg.num_experts_per_tok});
      seq.prefill_done = clock_type::now();
    }
    auto stop = advance(cfg, seq, last);
    commit_progress(self, id, seq);
    if (!stop.empty()) {
      seq.result.finish_reason = stop;
      finish_sequence(self, id, caf::none);
    }
  }
  schedule(self);
}

} // namespace engine_detail

using namespace engine_detail;

engine_actor::behavior_type
engine(engine_pointer self, std::shared_ptr<const dense_weights> weights,
       gating_actor gating, std::vector<expert_host> hosts,
       engine_options options) {
  auto& st = self->state;
  const auto& cfg = weights->config;
  if (options.num_pages <= 0)
    options.num_pages = (cfg.max_position_embeddings + options.page_size - 1)
                        / options.page_size;
  st.cache.emplace(cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim,
                   options.page_size, options.num_pages);
  // The manager lives and dies with the engine.
  st.kv = self->spawn<caf::linked>(kv_page_manager, options.page_size,
                                   options.num_pages);
  st.pool = expert_pool{static_cast<uint32_t>(cfg.num_local_experts)};
  st.weights = std::move(weights);
  st.gating = std::move(gating);
  st.options = std::move(options);
  self->set_down_handler(
    [self](caf::down_msg& msg) { on_host_down(self, msg); });
  for (auto& host : hosts)
    add_host(self, std::move(host));
  return {
    [self](generate_atom,
           generate_request& req) -> caf::result<generate_result> {
      auto& st = self->state;
      if (auto err = validate_request(st, req))
        return err;
      // The request the page manager is admitting is no longer waiting.
      auto waiting = st.queue.size() - (st.admitting ? 1 : 0);
      if (waiting >= st.options.max_queue) {
        ++st.refused;
        return make_volt_error(volt_errc::invalid_request,
                               "engine: queue full ("
                                 + std::to_string(st.options.max_queue)
                                 + " requests waiting); try again later");
      }
      auto promise = self->make_response_promise<generate_result>();
      st.queue.push_back({std::move(req), promise, clock_type::now()});
      report_queue(st);
      if (auto missing = st.pool.missing(); !missing.empty())
        VOLT_INFO("engine", "request waits for experts without a live host: "
                              << expert_pool::render(missing));
      schedule(self);
      return promise;
    },
    [self](status_atom) { return status_line(self->state); },
    [self](host_atom, expert_actor handle, std::vector<uint32_t> experts,
           std::string name) {
      add_host(self, expert_host{std::move(handle), std::move(experts),
                                 std::move(name), 0, 0});
    },
    [self](ready_atom) -> caf::result<bool> {
      auto& st = self->state;
      if (st.pool.missing().empty())
        return true;
      auto promise = self->make_response_promise<bool>();
      st.ready_waiters.push_back(promise);
      return promise;
    },
    [self](drain_atom) -> caf::result<bool> {
      auto& st = self->state;
      if (st.running.empty() && st.queue.empty())
        return true;
      auto promise = self->make_response_promise<bool>();
      st.drain_waiters.push_back(promise);
      return promise;
    },
    [self](tick_atom) { expire_waiting(self); },
  };
}

} // namespace volt
