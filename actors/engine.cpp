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

/// Tokens a sequence may occupy: prompt plus new tokens, within the context.
int64_t sequence_budget(const model_config& cfg, const generate_request& req) {
  return std::min<int64_t>(static_cast<int64_t>(req.prompt.size())
                             + req.max_new_tokens,
                           cfg.max_position_embeddings);
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
  if (req.n < 1 || req.n > max_sequences_per_request)
    return fail("n: " + std::to_string(req.n) + " sequences; must be in [1, "
                + std::to_string(max_sequences_per_request) + "]");
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

/// Expires requests that waited longer than ready_timeout for missing
/// experts.
void expire_waiting(engine_pointer self) {
  auto& st = self->state;
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
         + std::to_string(st.preempted.size()) + " preempted ("
         + std::to_string(st.preemptions) + " preemptions), "
         + std::to_string(st.pool.hosts().size()) + " expert hosts"
         + (missing.empty()
              ? std::string{}
              : " (no host for experts " + expert_pool::render(missing) + ")")
         + ", KV pool " + std::to_string(st.cache->num_pages()) + " pages";
}

} // namespace

void schedule_tick(engine_pointer self) {
  auto& st = self->state;
  if (st.tick_scheduled || (st.queue.empty() && !st.step))
    return;
  st.tick_scheduled = true;
  auto delay
    = std::min({st.options.ready_timeout / 4, st.options.step_timeout / 4,
                std::chrono::milliseconds{250}});
  self->delayed_send(self, std::max(delay, std::chrono::milliseconds{1}),
                     tick_atom_v);
}

caf::error missing_experts_error(const std::vector<uint32_t>& missing,
                                 const std::string& context) {
  return make_volt_error(volt_errc::missing_expert,
                         "no live host for experts "
                           + expert_pool::render(missing) + context);
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
    [self](tick_atom) {
      self->state.tick_scheduled = false;
      expire_overdue(self);
      expire_waiting(self);
      schedule_tick(self);
    },
  };
}

} // namespace volt
