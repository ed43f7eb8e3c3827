#include "actors/engine.hpp"

#include <algorithm>
#include <string>

#include "base/error.hpp"
#include "base/log.hpp"
#include "gpu/cpu/cpu_ops.hpp"

namespace volt {

namespace {

using clock_type = std::chrono::steady_clock;

/// Tries per expert batch before the request fails: a batch is re-sent when
/// its host dies or does not answer, to whichever replica is least loaded.
constexpr int max_dispatch_attempts = 3;

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
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
  auto n = static_cast<int64_t>(req.prompt.size());
  if (n > cfg.max_position_embeddings)
    return fail("prompt: " + std::to_string(n)
                + " tokens exceed the model's context of "
                + std::to_string(cfg.max_position_embeddings) + " tokens");
  auto total = std::min<int64_t>(n + req.max_new_tokens,
                                 cfg.max_position_embeddings);
  if (st.cache->pages_for(total) > st.cache->num_pages())
    return fail("request needs " + std::to_string(st.cache->pages_for(total))
                + " KV pages for " + std::to_string(total)
                + " tokens but the pool has "
                + std::to_string(st.cache->num_pages()));
  return caf::none;
}

caf::error missing_experts_error(const std::vector<uint32_t>& missing,
                                 const std::string& context) {
  return make_volt_error(volt_errc::missing_expert,
                         "no live host for experts "
                           + expert_pool::render(missing) + context);
}

void try_start(engine_pointer self);
void run_layer(engine_pointer self, int64_t layer);
void send_entries(engine_pointer self, std::vector<size_t> entries, int attempt,
                  std::vector<uint64_t> avoid);

void report_queue(engine_state& st) {
  if (st.options.metrics)
    st.options.metrics->queue_depth(st.queue.size());
}

/// Answers every drain waiter once nothing is queued or running.
void notify_drained(engine_state& st) {
  if (st.active || !st.queue.empty())
    return;
  for (auto& p : st.drain_waiters)
    p.deliver(true);
  st.drain_waiters.clear();
}

/// Ends the active generation with `err` and moves on to the next request.
void fail_active(engine_pointer self, const caf::error& err) {
  auto& st = self->state;
  if (!st.active)
    return;
  VOLT_WARN("engine", "request failed: " << describe(err));
  auto& a = *st.active;
  a.origin.promise.deliver(err);
  if (st.options.metrics)
    st.options.metrics->request_done(
      seconds_between(a.origin.arrived, clock_type::now()), false, 0);
  a.pages.release(*st.cache);
  if (st.dispatch)
    for (auto& [id, part] : st.dispatch->parts)
      if (st.pool.hosts().count(part.host) > 0)
        st.pool.host(part.host).inflight_rows -= part.rows;
  st.dispatch.reset();
  st.active.reset();
  ++st.failed;
  try_start(self);
  notify_drained(st);
}

/// Prepares the batch of the next decode step: the last generated token.
void begin_decode_step(active_generation& a) {
  auto pos = static_cast<int32_t>(a.tokens.size() - 1);
  a.batch.token_ids.assign(1, a.tokens.back());
  a.batch.positions.assign(1, pos);
  a.batch.sequences.assign(1, step_batch::sequence{0, 1, &a.pages.block_table});
  a.prefill = false;
}

/// Logits of the step are done: sample, then finish or run the next step.
void finish_step(engine_pointer self) {
  auto& st = self->state;
  auto& a = *st.active;
  const auto& cfg = st.weights->config;
  const auto& req = a.origin.request;
  const auto n = a.batch.size();
  std::vector<int64_t> rows;
  if (a.prefill && req.return_all_logits)
    for (int64_t r = 0; r < n; ++r)
      rows.push_back(r);
  else
    rows.push_back(n - 1);
  std::vector<float> logits;
  final_logits(*st.weights, a.hidden, rows, logits);
  const float* last = logits.data() + (rows.size() - 1) * cfg.vocab_size;
  if (a.prefill) {
    a.result.last_logits = pack_f32(last, {cfg.vocab_size});
    if (req.return_all_logits)
      a.result.all_logits = pack_f32(logits.data(), {n, cfg.vocab_size});
    if (req.return_routing)
      a.result.routing = pack_i32(a.routing.data(), {cfg.num_hidden_layers, n,
                                                     cfg.num_experts_per_tok});
    a.prefill_done = clock_type::now();
  }
  std::string stop;
  if (a.result.new_tokens.size() >= req.max_new_tokens) {
    stop = "length";
  } else {
    auto token = static_cast<int32_t>(cpu::argmax(last, cfg.vocab_size));
    a.result.new_tokens.push_back(token);
    a.tokens.push_back(token);
    if (!req.ignore_eos && token == cfg.eos_token_id)
      stop = "eos";
    else if (a.result.new_tokens.size() >= req.max_new_tokens)
      stop = "length";
    else if (static_cast<int64_t>(a.tokens.size())
             >= cfg.max_position_embeddings)
      stop = "context";
  }
  if (stop.empty()) {
    begin_decode_step(a);
    embed(*st.weights, a.batch, a.hidden);
    run_layer(self, 0);
    return;
  }
  auto now = clock_type::now();
  a.result.finish_reason = stop;
  a.result.prefill_seconds = seconds_between(a.started, a.prefill_done);
  a.result.decode_seconds = seconds_between(a.prefill_done, now);
  if (st.options.metrics)
    st.options.metrics->request_done(seconds_between(a.origin.arrived, now),
                                     true, a.result.new_tokens.size());
  a.origin.promise.deliver(std::move(a.result));
  a.pages.release(*st.cache);
  st.active.reset();
  ++st.completed;
  try_start(self);
  notify_drained(st);
}

/// Every part of the layer is back: combine and go on.
void finish_layer(engine_pointer self) {
  auto& st = self->state;
  auto d = std::move(st.dispatch);
  const auto& cfg = st.weights->config;
  combine(d->plan, d->topk_weights, cfg.num_experts_per_tok,
          d->expert_out.data(), cfg.hidden_size, st.active->hidden);
  if (d->layer + 1 < cfg.num_hidden_layers)
    run_layer(self, d->layer + 1);
  else
    finish_step(self);
}

/// Takes a part out of the layer's bookkeeping and its host's load.
dispatch_part take_part(engine_state& st, uint64_t part_id) {
  auto i = st.dispatch->parts.find(part_id);
  auto part = std::move(i->second);
  st.dispatch->parts.erase(i);
  if (st.pool.hosts().count(part.host) > 0)
    st.pool.host(part.host).inflight_rows -= part.rows;
  return part;
}

/// Re-sends a failed part to replicas, or fails the request when it has been
/// tried too often.
void retry_part(engine_pointer self, dispatch_part part,
                const caf::error& cause) {
  if (part.attempt + 1 >= max_dispatch_attempts)
    return fail_active(self, cause);
  if (self->state.options.metrics)
    self->state.options.metrics->failover();
  VOLT_INFO("engine", "re-sending " << part.rows << " rows of layer "
                                    << self->state.dispatch->layer
                                    << " to replicas (attempt "
                                    << part.attempt + 2 << ")");
  part.failed_hosts.push_back(part.host);
  send_entries(self, std::move(part.plan_entries), part.attempt + 1,
               std::move(part.failed_hosts));
}

void on_part_result(engine_pointer self, uint64_t part_id,
                    const wire_tensor& out) {
  auto& st = self->state;
  auto& d = *st.dispatch;
  const auto h = st.weights->config.hidden_size;
  auto host_name = st.pool.hosts().count(d.parts.at(part_id).host) > 0
                     ? st.pool.host(d.parts.at(part_id).host).name
                     : std::string{"gone"};
  auto part = take_part(st, part_id);
  if (auto err = check_wire_tensor(out, dtype::f32, {part.rows, h},
                                   "expert output from " + host_name))
    return fail_active(self, err);
  if (st.options.metrics)
    st.options.metrics->bytes_received(host_name, out.bytes.size());
  const auto* values = reinterpret_cast<const float*>(out.bytes.data());
  int64_t src = 0;
  for (auto entry : part.plan_entries) {
    auto count = static_cast<int64_t>(d.plan.row_counts[entry]);
    std::copy_n(values + src * h, count * h,
                d.expert_out.data() + d.first_row[entry] * h);
    src += count;
  }
  if (d.parts.empty())
    finish_layer(self);
}

/// Sends the rows of `entries` (indices into the layer's plan), one message
/// per chosen host.
void send_entries(engine_pointer self, std::vector<size_t> entries, int attempt,
                  std::vector<uint64_t> avoid) {
  auto& st = self->state;
  auto& d = *st.dispatch;
  const auto h = st.weights->config.hidden_size;
  std::map<uint64_t, std::vector<size_t>> by_host;
  std::vector<uint32_t> missing;
  for (auto entry : entries) {
    auto host = st.pool.pick(d.plan.expert_ids[entry], avoid);
    if (!host)
      missing.push_back(d.plan.expert_ids[entry]);
    else
      by_host[*host].push_back(entry);
  }
  if (!missing.empty())
    return fail_active(
      self, missing_experts_error(missing, " (their hosts failed and no "
                                           "replica is left)"));
  auto* active_id = st.active.get();
  for (auto& [host_id, host_entries] : by_host) {
    auto& host = st.pool.host(host_id);
    expert_batch batch;
    batch.layer = static_cast<uint32_t>(d.layer);
    int64_t rows = 0;
    for (auto entry : host_entries) {
      batch.expert_ids.push_back(d.plan.expert_ids[entry]);
      batch.row_counts.push_back(d.plan.row_counts[entry]);
      rows += d.plan.row_counts[entry];
    }
    std::vector<float> gathered(static_cast<size_t>(rows * h));
    int64_t dst = 0;
    for (auto entry : host_entries)
      for (int64_t r = d.first_row[entry];
           r < d.first_row[entry] + d.plan.row_counts[entry]; ++r, ++dst)
        std::copy_n(d.x.data() + d.plan.row_token[r] * h, h,
                    gathered.data() + dst * h);
    batch.rows = pack_f32(gathered.data(), {rows, h});
    if (st.options.metrics)
      st.options.metrics->bytes_sent(host.name, batch.rows.bytes.size());
    auto part_id = d.next_part++;
    d.parts.emplace(part_id,
                    dispatch_part{host_id, host_entries, rows, attempt, avoid});
    host.inflight_rows += rows;
    st.pool.picked(host_id);
    // A reply counts only while its part is still outstanding: after a
    // failover, the failed host's late answer (or error) is ignored.
    auto current = [self, active_id, part_id] {
      auto& s = self->state;
      return s.active.get() == active_id && s.dispatch
             && s.dispatch->parts.count(part_id) > 0;
    };
    self->request(host.handle, st.options.step_timeout, std::move(batch))
      .then(
        [self, current, part_id](const wire_tensor& out) {
          if (current())
            on_part_result(self, part_id, out);
        },
        [self, current, part_id](caf::error& err) {
          if (!current())
            return;
          auto part = take_part(self->state, part_id);
          VOLT_WARN("engine", "expert batch failed: " << describe(err));
          if (err == volt_errc::invalid_request)
            return fail_active(self, err);
          retry_part(self, std::move(part), err);
        });
  }
}

/// Routing of the layer is back: plan the expert work and send it out.
void dispatch_layer(engine_pointer self, routing_result routing) {
  auto& st = self->state;
  auto& d = *st.dispatch;
  const auto& cfg = st.weights->config;
  const auto n = st.active->batch.size();
  const auto k = cfg.num_experts_per_tok;
  if (auto err = check_wire_tensor(routing.topk_ids, dtype::i32, {n, k},
                                   "routing: topk_ids"))
    return fail_active(self, err);
  if (auto err = check_wire_tensor(routing.topk_weights, dtype::f32, {n, k},
                                   "routing: topk_weights"))
    return fail_active(self, err);
  std::vector<int32_t> ids;
  unpack_i32(routing.topk_ids, ids);
  unpack_f32(routing.topk_weights, d.topk_weights);
  for (auto id : ids)
    if (id < 0 || id >= cfg.num_local_experts)
      return fail_active(self, make_volt_error(volt_errc::internal,
                                               "routing: expert id "
                                                 + std::to_string(id)
                                                 + " is outside the model"));
  auto& a = *st.active;
  if (a.prefill && a.origin.request.return_routing)
    std::copy(ids.begin(), ids.end(), a.routing.begin() + d.layer * n * k);
  d.plan = plan_dispatch(ids, n, k, cfg.num_local_experts);
  d.first_row.resize(d.plan.expert_ids.size());
  int64_t offset = 0;
  for (size_t i = 0; i < d.plan.expert_ids.size(); ++i) {
    d.first_row[i] = offset;
    offset += d.plan.row_counts[i];
  }
  d.expert_out.assign(static_cast<size_t>(n * k * cfg.hidden_size), 0.0f);
  std::vector<size_t> entries(d.plan.expert_ids.size());
  for (size_t i = 0; i < entries.size(); ++i)
    entries[i] = i;
  send_entries(self, std::move(entries), 0, {});
}

void run_layer(engine_pointer self, int64_t layer) {
  auto& st = self->state;
  auto& a = *st.active;
  attention_block(*st.weights, layer, *st.cache, a.batch, a.hidden);
  st.dispatch = std::make_unique<layer_dispatch>();
  st.dispatch->layer = layer;
  moe_input(*st.weights, layer, a.hidden, st.dispatch->x);
  auto* active_id = st.active.get();
  auto current = [self, active_id] {
    return self->state.active.get() == active_id;
  };
  self
    ->request(st.gating, st.options.step_timeout, route_atom_v,
              static_cast<uint32_t>(layer),
              pack_f32(st.dispatch->x.data(),
                       {a.batch.size(), st.weights->config.hidden_size}))
    .then(
      [self, current](routing_result& routing) {
        if (current())
          dispatch_layer(self, std::move(routing));
      },
      [self, current](caf::error& err) {
        if (current())
          fail_active(self, err);
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

void start(engine_pointer self, queued_generation next) {
  auto& st = self->state;
  const auto& cfg = st.weights->config;
  auto a = std::make_unique<active_generation>();
  a->origin = std::move(next);
  a->started = clock_type::now();
  a->tokens = a->origin.request.prompt;
  auto n = static_cast<int64_t>(a->tokens.size());
  auto total = std::min<int64_t>(n + a->origin.request.max_new_tokens,
                                 cfg.max_position_embeddings);
  if (!a->pages.reserve(*st.cache, total)) {
    // validate_request checked the pool size and one generation runs at a
    // time, so this is a bug.
    a->origin.promise.deliver(
      make_volt_error(volt_errc::internal, "KV pool unexpectedly full"));
    return try_start(self);
  }
  if (a->origin.request.return_routing)
    a->routing.assign(
      static_cast<size_t>(cfg.num_hidden_layers * n * cfg.num_experts_per_tok),
      -1);
  a->batch.token_ids = a->tokens;
  a->batch.positions.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    a->batch.positions[i] = static_cast<int32_t>(i);
  a->batch.sequences.assign(1,
                            step_batch::sequence{0, n, &a->pages.block_table});
  st.active = std::move(a);
  embed(*st.weights, st.active->batch, st.active->hidden);
  run_layer(self, 0);
}

void try_start(engine_pointer self) {
  auto& st = self->state;
  if (st.active || st.queue.empty())
    return;
  if (auto missing = st.pool.missing(); !missing.empty()) {
    schedule_tick(self);
    return;
  }
  auto next = std::move(st.queue.front());
  st.queue.pop_front();
  report_queue(st);
  start(self, std::move(next));
}

/// Fails requests that waited longer than ready_timeout for missing experts.
void expire_waiting(engine_pointer self) {
  auto& st = self->state;
  st.tick_scheduled = false;
  auto missing = st.pool.missing();
  if (missing.empty())
    return try_start(self);
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

size_t remote_hosts(const expert_pool& pool) {
  return static_cast<size_t>(
    std::count_if(pool.hosts().begin(), pool.hosts().end(),
                  [](const auto& kv) { return kv.second.name != "local"; }));
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
    st.options.metrics->live_workers(remote_hosts(st.pool));
  if (st.pool.missing().empty()) {
    for (auto& p : st.ready_waiters)
      p.deliver(true);
    st.ready_waiters.clear();
  }
  try_start(self);
}

/// A monitored host died: forget it and re-send its outstanding work.
void on_host_down(engine_pointer self, const caf::down_msg& msg) {
  auto& st = self->state;
  auto id = st.pool.find(msg.source);
  if (!id)
    return;
  auto name = st.pool.host(*id).name;
  st.pool.remove(*id);
  VOLT_WARN("engine", "expert host " << name << " is down ("
                                     << to_string(msg.reason) << ")");
  if (st.options.metrics)
    st.options.metrics->live_workers(remote_hosts(st.pool));
  if (auto missing = st.pool.missing(); !missing.empty())
    VOLT_WARN("engine",
              "experts without a live host: " << expert_pool::render(missing));
  if (!st.dispatch)
    return;
  std::vector<uint64_t> orphaned;
  for (auto& [part_id, part] : st.dispatch->parts)
    if (part.host == *id)
      orphaned.push_back(part_id);
  for (auto part_id : orphaned) {
    if (!st.dispatch)
      return; // an earlier retry failed the request
    retry_part(self, take_part(st, part_id),
               make_volt_error(volt_errc::missing_expert,
                               "expert host " + name + " is down"));
  }
}

std::string status_line(const engine_state& st) {
  auto missing = st.pool.missing();
  return "engine: " + std::to_string(st.completed) + " completed, "
         + std::to_string(st.failed) + " failed, "
         + std::to_string(st.queue.size()) + " queued, "
         + (st.active ? "1 running" : "idle") + ", "
         + std::to_string(st.pool.hosts().size()) + " expert hosts"
         + (missing.empty()
              ? std::string{}
              : " (no host for experts " + expert_pool::render(missing) + ")")
         + ", KV pages free " + std::to_string(st.cache->free_pages()) + "/"
         + std::to_string(st.cache->num_pages());
}

} // namespace

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
      auto promise = self->make_response_promise<generate_result>();
      st.queue.push_back({std::move(req), promise, clock_type::now()});
      report_queue(st);
      if (auto missing = st.pool.missing(); !missing.empty())
        VOLT_INFO("engine", "request waits for experts without a live host: "
                              << expert_pool::render(missing));
      try_start(self);
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
      if (!st.active && st.queue.empty())
        return true;
      auto promise = self->make_response_promise<bool>();
      st.drain_waiters.push_back(promise);
      return promise;
    },
    [self](tick_atom) { expire_waiting(self); },
  };
}

} // namespace volt
