#include "actors/engine.hpp"

#include <algorithm>
#include <string>

#include "base/error.hpp"
#include "base/log.hpp"
#include "gpu/cpu/cpu_ops.hpp"

namespace volt {

namespace {

using clock_type = std::chrono::steady_clock;

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
  std::string missing;
  for (size_t e = 0; e < st.host_of_expert.size(); ++e)
    if (st.host_of_expert[e] < 0)
      missing += (missing.empty() ? "" : ", ") + std::to_string(e);
  if (!missing.empty())
    return make_volt_error(volt_errc::missing_expert,
                           "no live host for experts " + missing);
  return caf::none;
}

void start_next(engine_pointer self);
void run_layer(engine_pointer self, int64_t layer);

/// Ends the active generation with `err` and moves on to the next request.
void fail_active(engine_pointer self, const caf::error& err) {
  auto& st = self->state;
  if (!st.active)
    return;
  VOLT_WARN("engine", "request failed: " << describe(err));
  st.active->promise.deliver(err);
  st.active->pages.release(*st.cache);
  st.active.reset();
  ++st.failed;
  start_next(self);
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
  const auto n = a.batch.size();
  std::vector<int64_t> rows;
  if (a.prefill && a.request.return_all_logits)
    for (int64_t r = 0; r < n; ++r)
      rows.push_back(r);
  else
    rows.push_back(n - 1);
  std::vector<float> logits;
  final_logits(*st.weights, a.hidden, rows, logits);
  const float* last = logits.data() + (rows.size() - 1) * cfg.vocab_size;
  if (a.prefill) {
    a.result.last_logits = pack_f32(last, {cfg.vocab_size});
    if (a.request.return_all_logits)
      a.result.all_logits = pack_f32(logits.data(), {n, cfg.vocab_size});
    if (a.request.return_routing)
      a.result.routing = pack_i32(a.routing.data(), {cfg.num_hidden_layers, n,
                                                     cfg.num_experts_per_tok});
    a.prefill_done = clock_type::now();
  }
  std::string stop;
  if (a.result.new_tokens.size() >= a.request.max_new_tokens) {
    stop = "length";
  } else {
    auto token = static_cast<int32_t>(cpu::argmax(last, cfg.vocab_size));
    a.result.new_tokens.push_back(token);
    a.tokens.push_back(token);
    if (!a.request.ignore_eos && token == cfg.eos_token_id)
      stop = "eos";
    else if (a.result.new_tokens.size() >= a.request.max_new_tokens)
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
  a.promise.deliver(std::move(a.result));
  a.pages.release(*st.cache);
  st.active.reset();
  ++st.completed;
  start_next(self);
}

/// Sends each hosting actor the rows of its experts, then combines the answers.
void dispatch(engine_pointer self, int64_t layer,
              std::shared_ptr<std::vector<float>> x, routing_result routing) {
  auto& st = self->state;
  const auto& cfg = st.weights->config;
  const auto n = st.active->batch.size();
  const auto k = cfg.num_experts_per_tok;
  const auto h = cfg.hidden_size;
  if (auto err = check_wire_tensor(routing.topk_ids, dtype::i32, {n, k},
                                   "routing: topk_ids"))
    return fail_active(self, err);
  if (auto err = check_wire_tensor(routing.topk_weights, dtype::f32, {n, k},
                                   "routing: topk_weights"))
    return fail_active(self, err);
  std::vector<int32_t> ids;
  auto weights = std::make_shared<std::vector<float>>();
  unpack_i32(routing.topk_ids, ids);
  unpack_f32(routing.topk_weights, *weights);
  for (auto id : ids)
    if (id < 0 || id >= cfg.num_local_experts)
      return fail_active(self, make_volt_error(volt_errc::internal,
                                               "routing: expert id "
                                                 + std::to_string(id)
                                                 + " is outside the model"));
  auto& a = *st.active;
  if (a.prefill && a.request.return_routing)
    std::copy(ids.begin(), ids.end(), a.routing.begin() + layer * n * k);
  auto plan = std::make_shared<dispatch_plan>(
    plan_dispatch(ids, n, k, cfg.num_local_experts));
  // Per host: the experts it gets and where their rows sit in the grouped
  // order.
  struct host_part {
    expert_batch batch;
    std::vector<std::pair<int64_t, int64_t>>
      ranges; // (first grouped row, rows)
  };
  std::vector<host_part> parts(st.hosts.size());
  int64_t offset = 0;
  for (size_t i = 0; i < plan->expert_ids.size(); ++i) {
    auto e = plan->expert_ids[i];
    auto& part = parts[static_cast<size_t>(st.host_of_expert[e])];
    part.batch.expert_ids.push_back(e);
    part.batch.row_counts.push_back(plan->row_counts[i]);
    part.ranges.emplace_back(offset, plan->row_counts[i]);
    offset += plan->row_counts[i];
  }
  auto expert_out
    = std::make_shared<std::vector<float>>(static_cast<size_t>(n * k * h));
  auto pending = std::make_shared<size_t>(0);
  for (auto& part : parts)
    if (!part.ranges.empty())
      ++*pending;
  for (size_t hi = 0; hi < parts.size(); ++hi) {
    auto& part = parts[hi];
    if (part.ranges.empty())
      continue;
    int64_t host_rows = 0;
    for (auto& r : part.ranges)
      host_rows += r.second;
    std::vector<float> rows(static_cast<size_t>(host_rows * h));
    int64_t dst = 0;
    for (auto& [first, count] : part.ranges)
      for (int64_t r = first; r < first + count; ++r, ++dst)
        std::copy_n(x->data() + plan->row_token[r] * h, h,
                    rows.data() + dst * h);
    part.batch.layer = static_cast<uint32_t>(layer);
    part.batch.rows = pack_f32(rows.data(), {host_rows, h});
    auto ranges = std::move(part.ranges);
    auto* active_id = st.active.get();
    self
      ->request(st.hosts[hi].handle, st.options.step_timeout,
                std::move(part.batch))
      .then(
        [=](const wire_tensor& out) {
          auto& s = self->state;
          if (s.active.get() != active_id)
            return; // the generation already failed on another host
          if (auto err = check_wire_tensor(out, dtype::f32, {host_rows, h},
                                           "expert output"))
            return fail_active(self, err);
          std::vector<float> values;
          unpack_f32(out, values);
          int64_t src = 0;
          for (auto& [first, count] : ranges) {
            std::copy_n(values.data() + src * h, count * h,
                        expert_out->data() + first * h);
            src += count;
          }
          if (--*pending > 0)
            return;
          combine(*plan, *weights, k, expert_out->data(), h, s.active->hidden);
          if (layer + 1 < s.weights->config.num_hidden_layers)
            run_layer(self, layer + 1);
          else
            finish_step(self);
        },
        [=](caf::error& err) {
          if (self->state.active.get() == active_id)
            fail_active(self, err);
        });
  }
}

void run_layer(engine_pointer self, int64_t layer) {
  auto& st = self->state;
  auto& a = *st.active;
  attention_block(*st.weights, layer, *st.cache, a.batch, a.hidden);
  auto x = std::make_shared<std::vector<float>>();
  moe_input(*st.weights, layer, a.hidden, *x);
  auto* active_id = st.active.get();
  self
    ->request(st.gating, st.options.step_timeout, route_atom_v,
              static_cast<uint32_t>(layer),
              pack_f32(x->data(),
                       {a.batch.size(), st.weights->config.hidden_size}))
    .then(
      [=](routing_result& routing) {
        if (self->state.active.get() == active_id)
          dispatch(self, layer, x, std::move(routing));
      },
      [=](caf::error& err) {
        if (self->state.active.get() == active_id)
          fail_active(self, err);
      });
}

void start_next(engine_pointer self) {
  auto& st = self->state;
  if (st.active || st.queue.empty())
    return;
  auto [req, promise] = std::move(st.queue.front());
  st.queue.pop_front();
  const auto& cfg = st.weights->config;
  auto a = std::make_unique<active_generation>();
  a->request = std::move(req);
  a->promise = std::move(promise);
  a->started = clock_type::now();
  a->tokens = a->request.prompt;
  auto n = static_cast<int64_t>(a->tokens.size());
  auto total = std::min<int64_t>(n + a->request.max_new_tokens,
                                 cfg.max_position_embeddings);
  if (!a->pages.reserve(*st.cache, total)) {
    // validate_request checked the pool size and only one generation runs at a
    // time.
    a->promise.deliver(
      make_volt_error(volt_errc::internal, "KV pool unexpectedly full"));
    return start_next(self);
  }
  if (a->request.return_routing)
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
  st.weights = std::move(weights);
  st.gating = std::move(gating);
  st.hosts = std::move(hosts);
  st.options = options;
  st.host_of_expert.assign(static_cast<size_t>(cfg.num_local_experts), -1);
  for (size_t i = 0; i < st.hosts.size(); ++i)
    for (auto e : st.hosts[i].experts)
      if (e < st.host_of_expert.size() && st.host_of_expert[e] < 0)
        st.host_of_expert[e] = static_cast<int32_t>(i);
  return {
    [self](generate_atom,
           generate_request& req) -> caf::result<generate_result> {
      auto& st = self->state;
      if (auto err = validate_request(st, req))
        return err;
      auto promise = self->make_response_promise<generate_result>();
      st.queue.emplace_back(std::move(req), promise);
      start_next(self);
      return promise;
    },
    [self](status_atom) {
      auto& st = self->state;
      return "engine: " + std::to_string(st.completed) + " completed, "
             + std::to_string(st.failed) + " failed, "
             + std::to_string(st.queue.size()) + " queued, "
             + (st.active ? "1 running" : "idle") + ", KV pages free "
             + std::to_string(st.cache->free_pages()) + "/"
             + std::to_string(st.cache->num_pages());
    },
  };
}

} // namespace volt
