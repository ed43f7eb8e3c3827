#include "actors/engine.hpp"

#include <algorithm>
#include <string>
#include <utility>
#include <variant>

#include "actors/engine_control.hpp"
#include "actors/prefetch.hpp"
#include "actors/unexpected_messages.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "base/stop_request.hpp"
#include "caf/send.hpp"
#include "model/mapping_guard.hpp"

namespace volt {

std::vector<uint32_t> missing_experts(const engine_state& st) {
  auto missing = st.pool.missing();
  const auto& local = st.exec->local_experts();
  missing.erase(std::remove_if(missing.begin(), missing.end(),
                               [&](uint32_t e) {
                                 return std::binary_search(local.begin(),
                                                           local.end(), e);
                               }),
                missing.end());
  return missing;
}

namespace {

/// Whether requests may run now (every expert has a live host, or the
/// policy routes around those that have none).
bool can_serve(engine_state& st) {
  return st.routing.can_serve(missing_experts(st));
}

/// Answers the clients waiting for the engine to serve, if it does.
void deliver_ready(engine_state& st) {
  if (!can_serve(st) || st.ready_waiters.empty())
    return;
  for (auto& p : st.ready_waiters)
    p.deliver(true);
  st.ready_waiters.clear();
}

/// Sends the streamed requests' chunks and ends that the scheduler made, and
/// stops watching sinks whose last request ended.
void flush_streams(engine_pointer self) {
  auto& st = self->state;
  for (auto& msg : st.sched->take_sink_messages()) {
    bool end = std::holds_alternative<generate_end>(msg.content);
    std::visit([&](auto& content) { self->send(msg.sink, std::move(content)); },
               msg.content);
    if (!end)
      continue;
    auto i = st.sinks.find(msg.sink.address());
    if (i != st.sinks.end() && --i->second == 0) {
      self->demonitor(msg.sink.address());
      st.sinks.erase(i);
    }
  }
}

void watch_sink(engine_pointer self, const stream_sink_actor& sink) {
  if (self->state.sinks[sink.address()]++ == 0)
    self->monitor(sink);
}

void notify_drained(engine_state& st) {
  if (!st.sched->idle() || st.step_running)
    return;
  for (auto& p : st.drain_waiters)
    p.deliver(true);
  st.drain_waiters.clear();
}

/// Runs the next step once the mailbox had its turn: requests that arrived
/// during a step join the next one.
void schedule(engine_pointer self) {
  auto& st = self->state;
  if (st.step_running || st.step_scheduled)
    return;
  st.step_scheduled = true;
  self->send(self, step_atom_v);
}

/// Arms the engine's timer unless it is pending: it expires requests waiting
/// on missing experts and expert rows that took longer than step_timeout.
void schedule_tick(engine_pointer self) {
  auto& st = self->state;
  bool waiting_for_grace = !st.ready_waiters.empty() && st.routing.in_grace();
  if (st.tick_scheduled
      || !(st.sched->has_queued() || st.dispatch->active()
           || waiting_for_grace))
    return;
  st.tick_scheduled = true;
  auto delay
    = std::min({st.options.ready_timeout / 4, st.options.step_timeout / 4,
                std::chrono::milliseconds{250}});
  self->delayed_send(self, std::max(delay, std::chrono::milliseconds{1}),
                     tick_atom_v);
}

/// Counts the step in the metrics before its requests hear of it: a client
/// that reads the counters after its answer finds its steps there.
void record_step(engine_pointer self) {
  auto& t = self->state.timing;
  if (self->state.options.metrics)
    self->state.options.metrics->step_done(
      t.decode, t.rows, seconds_between(t.started, engine_clock::now()),
      t.wait_seconds);
}

void end_step(engine_pointer self) {
  self->state.step_running = false;
  if (!self->state.drains.empty())
    release_drained(self);
  flush_streams(self);
  schedule(self);
  notify_drained(self->state);
}

/// The predictor scores the finished step (fed its recorded routing when the
/// executor did not report it layer by layer) and the prefetch actor gets the
/// scores.
void score_step(engine_pointer self, const step_result& result) {
  auto& st = self->state;
  if (!st.predictor)
    return;
  if (!st.predictor_hooked) {
    const auto& cfg = st.exec->config();
    const auto k = cfg.num_experts_per_tok;
    const auto n = static_cast<int64_t>(result.routing.size())
                   / std::max<int64_t>(cfg.num_hidden_layers * k, 1);
    for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
      (void)st.predictor->layer_begins(l, nullptr, n);
      st.predictor->layer_routed(l, result.routing.data() + l * n * k, n);
    }
  }
  const auto& scores = st.predictor->end_step();
  if (st.options.prefetcher)
    self->send(st.options.prefetcher, make_prefetch_report(scores));
}

void fail_step(engine_pointer self, const caf::error& err) {
  auto& st = self->state;
  st.dispatch->cancel();
  finish_retirements(self);
  st.exec->abandon();
  st.step_copy.reset();
  if (st.predictor)
    st.predictor->abandon_step();
  record_step(self);
  st.sched->fail_step(err);
  end_step(self);
}

void start_step(engine_pointer self, step_request req);

/// Rows of the step failed at the expert hosts. When an expert lost its last
/// host mid-step and the policy renormalises, the step runs again without
/// it (the same rows rewrite the same K/V positions); else it fails.
void on_rows_failed(engine_pointer self, const caf::error& err) {
  auto& st = self->state;
  if (st.routing.renormalizes() && err == volt_errc::missing_expert
      && st.step_copy && can_serve(st)
      && st.routing.step_mask(missing_experts(st)) != st.step_mask) {
    VOLT_INFO("engine", "running the step again without the experts that "
                        "lost their last host ("
                          << describe(err) << ")");
    st.exec->abandon();
    return start_step(self, *st.step_copy);
  }
  fail_step(self, err);
}

/// Follows the executor's progress: sends rows to expert hosts while it asks
/// for them, hands the finished step to the scheduler.
void advance(engine_pointer self, caf::expected<step_progress> progress) {
  auto& st = self->state;
  if (!progress)
    return fail_step(self, progress.error());
  if (!progress->needs) {
    st.step_copy.reset();
    score_step(self, progress->result);
    record_step(self);
    if (st.options.metrics && !progress->result.expert_cache.empty())
      st.options.metrics->expert_cache_step(progress->result.expert_cache);
    st.sched->finish_step(progress->result, st.step_mask);
    return end_step(self);
  }
  count_routed(st, *progress->needs);
  // The hosts of the next layer's likely experts copy them in meanwhile.
  const auto next = progress->needs->layer + 1;
  if (st.predictor && st.options.stage_on_hosts
      && next < st.exec->config().num_hidden_layers)
    progress->needs->stage_next = st.predictor->early_stage(next);
  st.timing.rows_sent = engine_clock::now();
  st.dispatch->start(std::move(*progress->needs),
                     [self](caf::expected<std::vector<float>> outputs) {
                       auto& t = self->state.timing;
                       t.wait_seconds
                         += seconds_between(t.rows_sent, engine_clock::now());
                       // Every part of the layer is in: hosts being retired
                       // have nothing in flight now.
                       finish_retirements(self);
                       if (!outputs)
                         return on_rows_failed(self, outputs.error());
                       advance(self,
                               self->state.exec->resume(std::move(*outputs)));
                     });
  schedule_tick(self);
}

/// Starts `req` in the executor, routing without the experts that have no
/// live host when the policy renormalises.
void start_step(engine_pointer self, step_request req) {
  auto& st = self->state;
  auto missing = missing_experts(st);
  req.masked_experts = st.routing.step_mask(missing);
  st.routing.note(req.masked_experts, missing);
  st.step_mask = req.masked_experts;
  if (st.routing.renormalizes())
    st.step_copy = req;
  advance(self, st.exec->start(std::move(req)));
}

/// Lets a newly queued request join the batch (unless experts are missing).
void start_queued(engine_pointer self) {
  auto& st = self->state;
  if (!can_serve(st)) {
    VOLT_INFO("engine", "request waits for experts without a live host: "
                          << expert_pool::render(missing_experts(st)));
  } else {
    st.sched->reuse_prefixes(st.routing.step_mask(missing_experts(st)).empty());
    st.sched->admit();
  }
  flush_streams(self);
  schedule(self);
}

/// Stops computing for good: the weights under the executor changed on disk.
/// Fails every request, answers later ones with `err` and asks the node to
/// stop.
void stop_engine(engine_pointer self, caf::error err) {
  auto& st = self->state;
  VOLT_ERROR("engine", describe(err));
  st.stopped = std::move(err);
  st.sched->fail_all(st.stopped);
  flush_streams(self);
  notify_drained(st);
  request_stop(exit_checkpoint_changed);
}

/// Refuses a request before the scheduler sees it, counting it.
caf::error refuse(engine_pointer self, caf::error err) {
  if (self->state.options.metrics)
    self->state.options.metrics->request_refused();
  return err;
}

void run_next_step(engine_pointer self) {
  auto& st = self->state;
  if (st.step_running || st.stopped)
    return;
  // Before any weight is read: a file truncated or rewritten under the
  // mapping would crash the node or silently change its answers.
  if (auto err = check_mapped_files())
    return stop_engine(self, std::move(err));
  // A degraded answer is computed whole under the routing of its time: no
  // K/V from the prefix cache, which full routing wrote.
  st.sched->reuse_prefixes(st.routing.step_mask(missing_experts(st)).empty());
  auto req = st.sched->next_step(can_serve(st));
  flush_streams(self); // admission may have refused streamed requests
  if (!req) {
    schedule_tick(self); // requests may be waiting for experts
    notify_drained(st);
    return;
  }
  st.step_running = true;
  const auto& batch = req->batch;
  st.timing = step_timing{engine_clock::now(), {}, 0.0,
                          static_cast<size_t>(batch.size()),
                          batch.sequences.size()
                            == static_cast<size_t>(batch.size())};
  if (st.predictor) {
    req->record_routing |= !st.predictor_hooked;
    st.predictor->begin_step(batch);
  }
  start_step(self, std::move(*req));
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
  deliver_ready(st);
  schedule(self);
}

/// A sink went down: its requests must not keep computing.
void on_sink_down(engine_pointer self, const caf::down_msg& msg) {
  auto& st = self->state;
  for (auto id : st.sched->cancel_sink(msg.source))
    VOLT_INFO("engine", "request " << id
                                   << " cancelled: its stream sink is gone ("
                                   << (msg.reason ? describe(msg.reason)
                                                  : std::string{"it quit"})
                                   << ")");
  flush_streams(self);
  st.sinks.erase(msg.source);
  schedule(self);
  notify_drained(st);
}

/// A monitored actor died: an expert host (forget it and re-send its
/// outstanding rows) or a stream sink.
void on_down(engine_pointer self, const caf::down_msg& msg) {
  auto& st = self->state;
  auto id = st.pool.find(msg.source);
  if (!id)
    return on_sink_down(self, msg);
  auto name = st.pool.host(*id).name;
  st.pool.remove(*id);
  VOLT_WARN("engine", "expert host " << name << " is down ("
                                     << to_string(msg.reason) << ")");
  if (st.options.metrics)
    st.options.metrics->live_workers(st.pool.remote_count());
  if (auto missing = missing_experts(st); !missing.empty())
    VOLT_WARN("engine",
              "experts without a live host: " << expert_pool::render(missing));
  st.dispatch->host_down(*id, name);
  finish_retirements(self);
}

/// Fails queued requests that waited too long for missing experts.
void expire_waiting(engine_pointer self) {
  auto& st = self->state;
  if (can_serve(st)) {
    deliver_ready(st); // a renormalising engine's start-up grace ended
    return schedule(self);
  }
  auto missing = missing_experts(st);
  st.sched->expire_queued(
    st.options.ready_timeout,
    missing_experts_error(missing,
                          " after waiting "
                            + std::to_string(st.options.ready_timeout.count())
                            + " ms"));
  flush_streams(self);
  notify_drained(st);
}

std::string status_line(const engine_state& st) {
  auto missing = missing_experts(st);
  return "engine: " + st.sched->status() + ", "
         + std::to_string(st.pool.hosts().size()) + " expert hosts"
         + (missing.empty()
              ? std::string{}
              : " (no host for experts " + expert_pool::render(missing) + ")")
         + ", KV pool " + std::to_string(st.exec->num_pages()) + " pages ("
         + std::to_string(st.sched->pages().stats().pages_used)
         + " in use) on " + st.exec->where();
}

} // namespace

engine_actor::behavior_type engine(engine_pointer self,
                                   std::shared_ptr<model_executor> exec,
                                   std::vector<expert_host> hosts,
                                   engine_options options) {
  auto& st = self->state;
  const auto& cfg = exec->config();
  options.batching.max_step_rows = exec->max_step_rows();
  options.batching.metrics = options.metrics;
  st.sched = std::make_unique<scheduler>(cfg, exec->page_size(),
                                         exec->num_pages(), options.batching);
  st.pool = expert_pool{static_cast<uint32_t>(cfg.num_local_experts)};
  st.routing = degraded_routing{options.on_missing_expert,
                                options.masked_experts,
                                static_cast<uint32_t>(cfg.num_local_experts),
                                options.ready_timeout};
  st.routed_rows.assign(static_cast<size_t>(cfg.num_local_experts), 0);
  st.dispatch = std::make_unique<expert_dispatch>(
    self, st.pool, cfg.hidden_size, options.step_timeout, options.metrics);
  st.exec = std::move(exec);
  st.options = std::move(options);
  if (st.options.prefetch) {
    st.predictor = std::make_unique<prefetch::expert_predictor>(
      cfg, *st.options.prefetch);
    st.predictor_hooked = st.exec->observe_routing(st.predictor.get());
    if (!st.predictor_hooked)
      VOLT_INFO("engine", "prefetch: " << st.exec->where()
                                       << " does not report routing layer by "
                                          "layer; the n-gram predictor "
                                          "learns from each finished step");
    // The executor may outlive the engine (it is shared): it must not call a
    // predictor that is gone, and the prefetch actor ends with the engine.
    self->attach_functor([exec = st.exec, prefetcher = st.options.prefetcher] {
      exec->observe_routing(nullptr);
      if (prefetcher)
        caf::anon_send_exit(prefetcher, caf::exit_reason::user_shutdown);
    });
  }
  self->set_down_handler([self](caf::down_msg& msg) { on_down(self, msg); });
  drop_unexpected_messages(self);
  for (auto& host : hosts)
    add_host(self, std::move(host));
  if (st.options.discovery) {
    st.finder = self->spawn<caf::detached>(
      discovery, caf::actor_cast<engine_actor>(self), *st.options.discovery);
    self->attach_functor([finder = st.finder](const caf::error&) {
      caf::anon_send_exit(finder, caf::exit_reason::user_shutdown);
    });
  }
  return {
    [self](generate_atom,
           generate_request& req) -> caf::result<generate_result> {
      auto& st = self->state;
      if (st.stopped)
        return refuse(self, st.stopped);
      auto promise = self->make_response_promise<generate_result>();
      queued_generation job;
      job.request = std::move(req);
      job.promise = promise;
      job.arrived = engine_clock::now();
      auto id = st.sched->enqueue(std::move(job));
      if (!id) {
        promise.deliver(id.error());
        return promise;
      }
      start_queued(self);
      return promise;
    },
    [self](stream_atom, generate_request& req,
           stream_sink_actor& sink) -> caf::result<uint64_t> {
      auto& st = self->state;
      if (!sink)
        return refuse(self, make_volt_error(volt_errc::invalid_request,
                                            "stream: the sink actor is null"));
      if (st.stopped)
        return refuse(self, st.stopped);
      queued_generation job;
      job.request = std::move(req);
      job.arrived = engine_clock::now();
      job.sink = sink;
      auto id = st.sched->enqueue(std::move(job));
      if (!id)
        return std::move(id.error());
      watch_sink(self, sink);
      start_queued(self);
      return *id;
    },
    [self](cancel_atom, const cancel_request& c) -> caf::result<bool> {
      auto& st = self->state;
      auto found = st.sched->cancel(c);
      if (!found)
        return std::move(found.error());
      if (*found)
        VOLT_INFO("engine", (c.sequence < 0 ? std::string{}
                                            : "sequence "
                                                + std::to_string(c.sequence)
                                                + " of ")
                              << "request " << c.id << " cancelled ("
                              << (c.reason.empty() ? "cancelled" : c.reason)
                              << ")");
      flush_streams(self);
      schedule(self);
      notify_drained(st);
      return *found;
    },
    [self](status_atom) { return status_line(self->state); },
    [self](host_atom, expert_actor handle, std::vector<uint32_t> experts,
           std::string name) {
      add_host(self, expert_host{std::move(handle), std::move(experts),
                                 std::move(name), 0, 0});
    },
    [self](ready_atom) -> caf::result<bool> {
      auto& st = self->state;
      if (can_serve(st))
        return true;
      auto promise = self->make_response_promise<bool>();
      st.ready_waiters.push_back(promise);
      schedule_tick(self); // a renormalising engine serves after its grace
      return promise;
    },
    [self](drain_atom) -> caf::result<bool> {
      auto& st = self->state;
      if (st.sched->idle() && !st.step_running)
        return true;
      auto promise = self->make_response_promise<bool>();
      st.drain_waiters.push_back(promise);
      return promise;
    },
    [self](step_atom) {
      self->state.step_scheduled = false;
      run_next_step(self);
    },
    [self](load_atom) { return load_of(self->state); },
    [self](retire_atom, expert_actor& handle) {
      return retire_host(self, handle);
    },
    [self](tick_atom) {
      self->state.tick_scheduled = false;
      self->state.dispatch->expire_overdue();
      expire_waiting(self);
      schedule_tick(self);
    },
    [self](inspect_atom) { return inspect_engine(self); },
    [self](place_atom, std::string& node, std::vector<uint32_t>& experts) {
      return place_experts(self, std::move(node), std::move(experts));
    },
    [self](drain_atom, const std::string& node) {
      return drain_node(self, node);
    },
  };
}

engine_actor spawn_engine(caf::actor_system& sys,
                          std::shared_ptr<model_executor> exec,
                          std::vector<expert_host> hosts,
                          engine_options options) {
  if (options.prefetch && !options.prefetcher)
    options.prefetcher = sys.spawn(prefetch_tracker,
                                   exec->config().num_hidden_layers,
                                   options.metrics);
  if (exec->blocks_on_device())
    return sys.spawn<caf::detached>(engine, std::move(exec), std::move(hosts),
                                    std::move(options));
  return sys.spawn(engine, std::move(exec), std::move(hosts),
                   std::move(options));
}

} // namespace volt
