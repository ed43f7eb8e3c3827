// A step of the engine's running batch: the page manager's write plan (with
// preemption when pages run out), the layers, sampling at the end, forks for
// parallel sampling, and the progress notes back to the page manager.

#include <algorithm>
#include <string>
#include <utility>

#include "actors/engine_internal.hpp"
#include "base/error.hpp"
#include "base/log.hpp"

namespace volt::engine_detail {

namespace {

/// Takes note of progress for the page manager: K/V of the first `computed`
/// tokens exist, and the tokens sampled since the last note. Full pages then
/// enter the prefix cache.
void note_progress(engine_state& st, uint64_t id, running_sequence& seq) {
  st.pending_commits.push_back(
    kv_commit{id, seq.computed,
              std::vector<int32_t>(seq.tokens.begin() + seq.announced,
                                   seq.tokens.end())});
  seq.announced = static_cast<int64_t>(seq.tokens.size());
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

/// The positions a sequence computes in the next step: a prompt (or resume)
/// chunk, or its last sampled token.
std::pair<int64_t, int64_t> next_rows(const engine_state& st,
                                      const running_sequence& seq) {
  auto end = static_cast<int64_t>(seq.tokens.size());
  return {seq.computed, std::min(end, seq.computed + st.options.prefill_chunk)};
}

/// Starts sequence `index` > 0 of a request as a fork of `parent`, whose
/// prompt is computed: it shares every page, has its own random stream, and
/// samples its first token from the same logits.
running_sequence fork_sequence(engine_pointer self, uint64_t parent_id,
                               const running_sequence& parent, uint32_t index,
                               uint64_t child_id) {
  running_sequence child;
  child.group = parent.group;
  child.index = index;
  child.block_table = parent.block_table;
  child.tokens = parent.tokens;
  child.prompt_len = parent.prompt_len;
  child.computed = parent.computed;
  child.announced = parent.announced;
  child.kv.pages_shared = static_cast<int64_t>(parent.block_table.size());
  child.sampler = token_sampler{parent.request().seed, index};
  ++child.group->unfinished;
  // Sent before the step's progress notes (kv_sync), so the manager forks
  // the parent before it learns the parent's first sampled token.
  self
    ->request(self->state.kv, caf::infinite, kv_fork_atom_v, parent_id,
              child_id)
    .then([](const std::vector<int32_t>&) {},
          [](caf::error& err) {
            VOLT_ERROR("engine", "KV fork: " << describe(err));
          });
  return child;
}

/// Picks the next token of `seq` from the logits of its last row; returns the
/// reason to stop, or empty.
std::string advance(const model_config& cfg, running_sequence& seq,
                    const float* logits) {
  const auto& req = seq.request();
  if (seq.generated() >= req.max_new_tokens)
    return "length";
  auto token = seq.sampler.sample(logits, cfg.vocab_size, sampling_of(req));
  seq.tokens.push_back(token);
  if (!req.ignore_eos && token == cfg.eos_token_id)
    return "eos";
  if (seq.generated() >= req.max_new_tokens)
    return "length";
  if (static_cast<int64_t>(seq.tokens.size()) >= cfg.max_position_embeddings)
    return "context";
  return {};
}

/// Ends sequence `id` after it sampled its last token.
void finish_sequence(engine_state& st, uint64_t id, const std::string& why) {
  auto i = st.running.find(id);
  auto& seq = i->second;
  auto& g = *seq.group;
  auto& res = g.result;
  res.sequences[seq.index].assign(seq.tokens.begin() + seq.prompt_len,
                                  seq.tokens.end());
  res.finish_reasons[seq.index] = why;
  res.kv.pages_used += static_cast<int64_t>(seq.block_table.size());
  res.kv.pages_shared += std::max<int64_t>(seq.kv.pages_shared, 0);
  res.kv.copy_on_write += seq.kv.copy_on_write;
  res.kv.preemptions += seq.kv.preemptions;
  res.kv.prefix_hit_tokens += seq.kv.prefix_hit_tokens;
  retire(st, seq, true, id);
  st.running.erase(i);
}

/// The prompt of `seq` (sequence 0 of its request) is computed and `logits`
/// are its last position's: records the request's prompt results and forks
/// the request's other sequences.
void finish_prompt(engine_pointer self, uint64_t id, running_sequence& seq,
                   const float* logits) {
  auto& st = self->state;
  const auto& cfg = st.weights->config;
  auto& g = *seq.group;
  const auto& req = g.request();
  const auto vocab = cfg.vocab_size;
  g.prefilled = true;
  g.prefill_done = clock_type::now();
  g.result.last_logits = pack_f32(logits, {vocab});
  if (req.return_all_logits)
    g.result.all_logits = pack_f32(g.all_logits.data(),
                                   {seq.prompt_len, vocab});
  if (req.return_routing)
    g.result.routing = pack_i32(g.routing.data(),
                                {cfg.num_hidden_layers, seq.prompt_len,
                                 cfg.num_experts_per_tok});
  for (uint32_t i = 1; i < req.n; ++i) {
    auto child_id = st.next_sequence++;
    auto child = fork_sequence(self, id, seq, i, child_id);
    auto stop = advance(cfg, child, logits);
    note_progress(st, child_id, child);
    st.running.emplace(child_id, std::move(child));
    if (!stop.empty())
      finish_sequence(st, child_id, stop);
  }
}

/// Sends the progress notes and releases gathered since the last sync. A
/// release may unblock a waiting admission.
void sync_kv(engine_pointer self) {
  auto& st = self->state;
  if (st.pending_commits.empty() && st.pending_releases.empty())
    return;
  kv_sync msg{std::move(st.pending_commits), std::move(st.pending_releases)};
  st.pending_commits.clear();
  st.pending_releases.clear();
  bool releases = !msg.releases.empty();
  self->request(st.kv, caf::infinite, std::move(msg))
    .then(
      [self, releases](int64_t) {
        // Pages are free again: a blocked admission may fit now.
        if (releases && std::exchange(self->state.admission_blocked, false))
          schedule(self);
      },
      [](caf::error& err) {
        VOLT_ERROR("engine", "KV sync: " << describe(err));
      });
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

/// Runs the step whose write plan arrived: performs the copies, adopts the
/// new block tables, and computes every running sequence's next rows.
void run_step(engine_pointer self, kv_step_plan& plan) {
  auto& st = self->state;
  for (auto id : plan.preempted)
    preempt(st, id);
  for (auto& p : plan.plans) {
    auto& seq = st.running.at(p.seq);
    for (size_t c = 0; c + 1 < p.copies.size(); c += 2)
      copy_page(*st.cache, st.weights->config.num_hidden_layers, p.copies[c],
                p.copies[c + 1]);
    auto copies = static_cast<int64_t>(p.copies.size() / 2);
    seq.kv.copy_on_write += copies;
    seq.kv.pages_shared -= copies;
    seq.block_table = std::move(p.block_table);
  }
  auto& step = *st.step;
  auto& b = step.batch;
  step.sequence_ids.clear();
  for (auto& [id, seq] : st.running) {
    auto [from, to] = next_rows(st, seq);
    b.sequences.push_back(
      step_batch::sequence{b.size(), to - from, &seq.block_table});
    for (int64_t pos = from; pos < to; ++pos) {
      b.token_ids.push_back(seq.tokens[static_cast<size_t>(pos)]);
      b.positions.push_back(static_cast<int32_t>(pos));
    }
    step.sequence_ids.push_back(id);
  }
  embed(*st.weights, b, step.hidden);
  run_layer(self, 0);
}

/// Starts the next step: asks the page manager where every running sequence
/// may write its next rows (copy-on-write of shared pages, new pages, and
/// preemption of the newest sequences when pages run out), then runs it.
void begin_step(engine_pointer self) {
  auto& st = self->state;
  st.step = std::make_unique<engine_step>();
  kv_step req;
  for (auto& [id, seq] : st.running) {
    auto [from, to] = next_rows(st, seq);
    req.writes.push_back(kv_write{id, from, to});
    st.step->sequence_ids.push_back(id);
  }
  auto* step_id = st.step.get();
  self->request(st.kv, caf::infinite, std::move(req))
    .then(
      [self, step_id](kv_step_plan& plan) {
        if (self->state.step.get() == step_id)
          run_step(self, plan);
      },
      [self, step_id](caf::error& err) {
        if (self->state.step.get() == step_id)
          fail_step(self, err);
      });
}

} // namespace

void schedule(engine_pointer self) {
  auto& st = self->state;
  if (st.step || st.admitting)
    return;
  sync_kv(self);
  admit(self);
  if (st.admitting)
    return; // schedule runs again with the manager's answer
  if (!st.running.empty())
    begin_step(self);
  else
    notify_drained(st);
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
  for (auto id : step->sequence_ids) {
    auto i = st.running.find(id);
    if (i == st.running.end())
      continue;
    fail_group(st, *i->second.group, err);
    retire(st, i->second, true, id);
    st.running.erase(i);
  }
  schedule(self);
}

void finish_step(engine_pointer self) {
  auto& st = self->state;
  const auto& cfg = st.weights->config;
  auto step = std::move(st.step);
  report_kv(self, step->sequence_ids.size());
  const auto& b = step->batch;
  // Rows whose logits are needed: prompt rows of requests that asked for all
  // logits (until their prompt is done), and the last row of each sequence
  // that reaches its last token.
  std::vector<int64_t> rows;
  std::vector<int64_t> first_index(b.sequences.size(), -1);
  std::vector<int64_t> last_index(b.sequences.size(), -1);
  for (size_t i = 0; i < b.sequences.size(); ++i) {
    const auto& span = b.sequences[i];
    const auto& seq = st.running.at(step->sequence_ids[i]);
    auto end = seq.computed + span.n_rows;
    bool sample = end == static_cast<int64_t>(seq.tokens.size());
    auto prompt_rows = seq.request().return_all_logits && !seq.group->prefilled
                         ? std::min(end, seq.prompt_len) - seq.computed
                         : 0;
    first_index[i] = static_cast<int64_t>(rows.size());
    for (int64_t r = 0; r < prompt_rows; ++r)
      rows.push_back(span.first_row + r);
    if (sample) {
      if (prompt_rows < span.n_rows)
        rows.push_back(span.first_row + span.n_rows - 1);
      last_index[i] = static_cast<int64_t>(rows.size()) - 1;
    }
  }
  std::vector<float> logits;
  if (!rows.empty())
    final_logits(*st.weights, step->hidden, rows, logits);
  const auto vocab = cfg.vocab_size;
  for (size_t i = 0; i < b.sequences.size(); ++i) {
    auto id = step->sequence_ids[i];
    auto& seq = st.running.at(id);
    auto& g = *seq.group;
    auto from = seq.computed;
    seq.computed += b.sequences[i].n_rows;
    if (seq.request().return_all_logits && !g.prefilled
        && from < seq.prompt_len) {
      auto n = std::min(seq.computed, seq.prompt_len) - from;
      std::copy_n(logits.data() + first_index[i] * vocab, n * vocab,
                  g.all_logits.data() + from * vocab);
    }
    if (last_index[i] < 0) {
      note_progress(st, id, seq);
      continue; // more prompt (or resume) chunks to go
    }
    const float* last = logits.data() + last_index[i] * vocab;
    if (!g.prefilled)
      finish_prompt(self, id, seq, last);
    auto stop = advance(cfg, seq, last);
    note_progress(st, id, seq);
    if (!stop.empty())
      finish_sequence(st, id, stop);
  }
  schedule(self);
}

} // namespace volt::engine_detail
