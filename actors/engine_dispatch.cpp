// The engine's per-layer work: routing on the gating actor, then one expert
// batch per hosting actor, re-sent to a replica when its host fails.

#include <algorithm>
#include <string>

#include "actors/engine_internal.hpp"
#include "base/error.hpp"
#include "base/log.hpp"

namespace volt::engine_detail {

namespace {

/// Tries per expert batch before the step fails: a batch is re-sent when its
/// host dies or does not answer, to whichever replica is least loaded.
constexpr int max_dispatch_attempts = 3;

void send_entries(engine_pointer self, std::vector<size_t> entries, int attempt,
                  std::vector<uint64_t> avoid);
void finish_layer(engine_pointer self);

/// Copies the experts chosen for prompt rows into their sequences' routing
/// record, for requests that asked for it.
void record_routing(engine_state& st, int64_t layer,
                    const std::vector<int32_t>& ids) {
  const auto& cfg = st.weights->config;
  const auto k = cfg.num_experts_per_tok;
  const auto& s = *st.step;
  for (size_t i = 0; i < s.batch.sequences.size(); ++i) {
    auto& seq = st.running.at(s.sequence_ids[i]);
    if (!seq.request().return_routing || seq.group->prefilled)
      continue;
    const auto& span = s.batch.sequences[i];
    for (int64_t r = span.first_row; r < span.first_row + span.n_rows; ++r) {
      auto pos = s.batch.positions[static_cast<size_t>(r)];
      if (pos >= seq.prompt_len)
        continue; // generated tokens are not part of the record
      std::copy_n(ids.begin() + r * k, k,
                  seq.group->routing.begin()
                    + (layer * seq.prompt_len + pos) * k);
    }
  }
}

/// Takes a part out of the layer's bookkeeping and its host's load.
dispatch_part take_part(engine_state& st, uint64_t part_id) {
  auto& parts = st.step->dispatch->parts;
  auto i = parts.find(part_id);
  auto part = std::move(i->second);
  parts.erase(i);
  if (st.pool.hosts().count(part.host) > 0)
    st.pool.host(part.host).inflight_rows -= part.rows;
  return part;
}

/// Re-sends a failed part to replicas, or fails the request when it has been
/// tried too often.
void retry_part(engine_pointer self, dispatch_part part,
                const caf::error& cause) {
  if (part.attempt + 1 >= max_dispatch_attempts)
    return fail_step(self, cause);
  if (self->state.options.metrics)
    self->state.options.metrics->failover();
  VOLT_INFO("engine", "re-sending " << part.rows << " rows of layer "
                                    << self->state.step->dispatch->layer
                                    << " to replicas (attempt "
                                    << part.attempt + 2 << ")");
  part.failed_hosts.push_back(part.host);
  send_entries(self, std::move(part.plan_entries), part.attempt + 1,
               std::move(part.failed_hosts));
}

void on_part_result(engine_pointer self, uint64_t part_id,
                    const wire_tensor& out) {
  auto& st = self->state;
  auto& d = *st.step->dispatch;
  const auto h = st.weights->config.hidden_size;
  auto host_name = st.pool.hosts().count(d.parts.at(part_id).host) > 0
                     ? st.pool.host(d.parts.at(part_id).host).name
                     : std::string{"gone"};
  auto part = take_part(st, part_id);
  if (auto err = check_wire_tensor(out, dtype::f32, {part.rows, h},
                                   "expert output from " + host_name))
    return fail_step(self, err);
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
  auto& d = *st.step->dispatch;
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
    return fail_step(self, missing_experts_error(missing,
                                                 " (their hosts failed and no "
                                                 "replica is left)"));
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
    auto part_id = st.next_request_id++;
    d.parts.emplace(part_id, dispatch_part{host_id, host_entries, rows, attempt,
                                           avoid, clock_type::now()});
    host.inflight_rows += rows;
    st.pool.picked(host_id);
    // A reply counts only while its part is still outstanding: after a
    // failover, the failed host's late answer (or error) is ignored. No
    // timeout here: the engine's timer checks step_timeout (engine.hpp).
    auto current = [self, part_id] {
      auto& s = self->state;
      return s.step && s.step->dispatch
             && s.step->dispatch->parts.count(part_id) > 0;
    };
    self->request(host.handle, caf::infinite, std::move(batch))
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
            return fail_step(self, err);
          retry_part(self, std::move(part), err);
        });
  }
  schedule_tick(self);
}

/// Routing of the layer is back: plan the expert work and send it out.
void dispatch_layer(engine_pointer self, routing_result routing) {
  auto& st = self->state;
  auto& d = *st.step->dispatch;
  d.routing_pending = false;
  const auto& cfg = st.weights->config;
  const auto n = st.step->batch.size();
  const auto k = cfg.num_experts_per_tok;
  if (auto err = check_wire_tensor(routing.topk_ids, dtype::i32, {n, k},
                                   "routing: topk_ids"))
    return fail_step(self, err);
  if (auto err = check_wire_tensor(routing.topk_weights, dtype::f32, {n, k},
                                   "routing: topk_weights"))
    return fail_step(self, err);
  std::vector<int32_t> ids;
  unpack_i32(routing.topk_ids, ids);
  unpack_f32(routing.topk_weights, d.topk_weights);
  for (auto id : ids)
    if (id < 0 || id >= cfg.num_local_experts)
      return fail_step(self, make_volt_error(volt_errc::internal,
                                             "routing: expert id "
                                               + std::to_string(id)
                                               + " is outside the model"));
  record_routing(st, d.layer, ids);
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

/// Every part of the layer is back: combine and go on.
void finish_layer(engine_pointer self) {
  auto& st = self->state;
  auto d = std::move(st.step->dispatch);
  const auto& cfg = st.weights->config;
  combine(d->plan, d->topk_weights, cfg.num_experts_per_tok,
          d->expert_out.data(), cfg.hidden_size, st.step->hidden);
  if (d->layer + 1 < cfg.num_hidden_layers)
    run_layer(self, d->layer + 1);
  else
    finish_step(self);
}

} // namespace

void run_layer(engine_pointer self, int64_t layer) {
  auto& st = self->state;
  auto& s = *st.step;
  attention_block(*st.weights, layer, *st.cache, s.batch, s.hidden);
  s.dispatch = std::make_unique<layer_dispatch>();
  s.dispatch->layer = layer;
  moe_input(*st.weights, layer, s.hidden, s.dispatch->x);
  auto id = st.next_request_id++;
  s.dispatch->routing_id = id;
  s.dispatch->routing_sent = clock_type::now();
  // The answer counts only while this routing is awaited: after a timeout,
  // a late one is ignored. No timeout here: see step_timeout (engine.hpp).
  auto current = [self, id] {
    auto& s = self->state;
    return s.step && s.step->dispatch && s.step->dispatch->routing_pending
           && s.step->dispatch->routing_id == id;
  };
  schedule_tick(self);
  self
    ->request(st.gating, caf::infinite, route_atom_v,
              static_cast<uint32_t>(layer),
              pack_f32(s.dispatch->x.data(),
                       {s.batch.size(), st.weights->config.hidden_size}))
    .then(
      [self, current](routing_result& routing) {
        if (current())
          dispatch_layer(self, std::move(routing));
      },
      [self, current](caf::error& err) {
        if (current())
          fail_step(self, err);
      });
}

void expire_overdue(engine_pointer self) {
  auto& st = self->state;
  if (!st.step || !st.step->dispatch)
    return;
  const auto limit = st.options.step_timeout;
  const auto ms = std::to_string(limit.count());
  auto now = clock_type::now();
  auto& d = *st.step->dispatch;
  if (d.routing_pending) {
    if (now - d.routing_sent >= limit)
      fail_step(self, caf::make_error(caf::sec::request_timeout,
                                      "the gating actor did not answer within "
                                        + ms + " ms"));
    return;
  }
  std::vector<uint64_t> overdue;
  for (auto& [part_id, part] : d.parts)
    if (now - part.sent >= limit)
      overdue.push_back(part_id);
  for (auto part_id : overdue) {
    if (!st.step || !st.step->dispatch)
      return; // an earlier retry failed the step
    auto part = take_part(st, part_id);
    auto name = st.pool.hosts().count(part.host) > 0
                  ? st.pool.host(part.host).name
                  : std::string{"gone"};
    auto err = caf::make_error(caf::sec::request_timeout,
                               "expert host " + name + " did not answer within "
                                 + ms + " ms");
    VOLT_WARN("engine", "expert batch failed: " << describe(err));
    retry_part(self, std::move(part), err);
  }
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
    st.options.metrics->live_workers(st.pool.remote_count());
  if (auto missing = st.pool.missing(); !missing.empty())
    VOLT_WARN("engine",
              "experts without a live host: " << expert_pool::render(missing));
  if (!st.step || !st.step->dispatch)
    return;
  std::vector<uint64_t> orphaned;
  for (auto& [part_id, part] : st.step->dispatch->parts)
    if (part.host == *id)
      orphaned.push_back(part_id);
  for (auto part_id : orphaned) {
    if (!st.step || !st.step->dispatch)
      return; // an earlier retry failed the step
    retry_part(self, take_part(st, part_id),
               make_volt_error(volt_errc::missing_expert,
                               "expert host " + name + " is down"));
  }
}

} // namespace volt::engine_detail
