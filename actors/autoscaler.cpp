#include "actors/autoscaler.hpp"

#include <algorithm>
#include <ctime>
#include <sstream>

#include "actors/expert_pool.hpp"
#include "actors/replicas.hpp"
#include "actors/unexpected_messages.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "base/log_throttle.hpp"
#include "model/json.hpp"

namespace volt {

namespace {

using clock_type = std::chrono::steady_clock;

/// Now as ISO 8601 UTC with milliseconds, e.g. "2026-05-01T12:00:00.123Z".
std::string utc_now() {
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              now.time_since_epoch())
              .count()
            % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[40];
  std::snprintf(out, sizeof(out), "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

json::value optional_number(const std::optional<double>& x) {
  return x ? json::value(json::rounded(*x, 6)) : json::value(nullptr);
}

/// The event POSTed to the webhook for one action.
std::string event_json(const std::string& action, const std::string& reason,
                       const load_view& load, const std::string& node,
                       const std::vector<replica_set>& replicas) {
  json::value doc = json::value::object();
  doc["action"] = action;
  doc["reason"] = reason;
  doc["queue_depth"] = load.queued;
  doc["p90_seconds"] = optional_number(load.p90);
  doc["p99_seconds"] = optional_number(load.p99);
  doc["hot_experts"] = json::value::array();
  doc["rows_per_second"] = json::value::array();
  for (const auto& h : load.hot) {
    doc["hot_experts"].push_back(h.expert);
    doc["rows_per_second"].push_back(json::rounded(h.rows_per_second, 3));
  }
  doc["nodes"] = json::value::array();
  for (const auto& n : load.nodes)
    doc["nodes"].push_back(
      json::value{{"node", n.node},
                  {"rows_per_second", json::rounded(n.rows_per_second, 3)}});
  doc["node"] = node;
  doc["time"] = utc_now();
  doc["replicas"] = json::value::array();
  for (const auto& r : replicas)
    doc["replicas"].push_back(
      json::value{{"node", r.node}, {"experts", r.experts}});
  return json::dump(doc);
}

std::string render_hot(const std::vector<expert_rate>& hot) {
  if (hot.empty())
    return "none";
  std::ostringstream out;
  for (size_t i = 0; i < hot.size(); ++i)
    out << (i == 0 ? "" : ", ") << hot[i].expert << " ("
        << json::rounded(hot[i].rows_per_second, 1) << " rows/s)";
  return out.str();
}

void post(autoscaler_pointer self, std::string event) {
  if (self->state.webhook)
    self->send(self->state.webhook, post_atom_v, std::move(event));
}

void report_replicas(autoscaler_state& st) {
  if (!st.options.metrics)
    return;
  size_t n = 0;
  for (const auto& r : st.replicas)
    if (r.handle)
      n += r.experts.size();
  st.options.metrics->autoscaler_replicas(n);
}

replica_set* find_replicas(autoscaler_state& st, const std::string& node) {
  for (auto& r : st.replicas)
    if (r.node == node)
      return &r;
  return nullptr;
}

void forget_replicas(autoscaler_state& st, const std::string& node) {
  st.replicas.erase(
    std::remove_if(st.replicas.begin(), st.replicas.end(),
                   [&](const replica_set& r) { return r.node == node; }),
    st.replicas.end());
  report_replicas(st);
}

/// A spare node without replicas of ours: never failed ones in the order
/// listed, then the one whose spawn failed longest ago.
const endpoint* free_spare(autoscaler_state& st) {
  const endpoint* best = nullptr;
  std::optional<clock_type::time_point> best_failure;
  for (const auto& where : st.options.spare_nodes) {
    auto name = render_endpoint(where.host, where.port);
    if (find_replicas(st, name) != nullptr)
      continue;
    auto failed = st.spare_failures.find(name);
    if (failed == st.spare_failures.end())
      return &where;
    if (!best || failed->second < *best_failure) {
      best = &where;
      best_failure = failed->second;
    }
  }
  return best;
}

/// The hot experts that may get one more replica.
std::vector<uint32_t>
experts_to_replicate(const autoscaler_state& st,
                     const std::vector<expert_rate>& hot) {
  std::vector<uint32_t> out;
  for (const auto& h : hot) {
    uint32_t added = 0;
    for (const auto& r : st.replicas)
      added += static_cast<uint32_t>(
        std::count(r.experts.begin(), r.experts.end(), h.expert));
    if (added < st.options.max_replicas_per_expert)
      out.push_back(h.expert);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void on_spawned(autoscaler_pointer self, const std::string& node,
                expert_actor handle, std::vector<uint32_t> hosted) {
  auto& st = self->state;
  auto* set = find_replicas(st, node);
  if (set == nullptr || set->handle) {
    self->send_exit(handle, caf::exit_reason::user_shutdown);
    return;
  }
  set->handle = handle;
  self->monitor(handle);
  VOLT_INFO("autoscaler", "replicas of experts " << expert_pool::render(hosted)
                                                 << " serve on " << node);
  self->send(st.engine, host_atom_v, std::move(handle), std::move(hosted),
             node);
  report_replicas(st);
}

void on_spawn_failed(autoscaler_pointer self, const std::string& node,
                     const caf::error& err) {
  auto& st = self->state;
  auto* set = find_replicas(st, node);
  VOLT_WARN("autoscaler",
            "cannot spawn replicas of experts "
              << (set ? expert_pool::render(set->experts) : std::string{"?"})
              << " on " << node << ": " << describe(err)
              << "; the next scale_up tries another spare node first");
  st.spare_failures[node] = clock_type::now();
  forget_replicas(st, node);
}

void scale_up(autoscaler_pointer self, const autoscale_decision& d) {
  auto& st = self->state;
  std::vector<replica_set> planned;
  std::string plan;
  if (!st.options.spare_nodes.empty()) {
    auto experts = experts_to_replicate(st, d.load.hot);
    const auto* spare = free_spare(st);
    if (d.load.hot.empty())
      plan = "; no expert load to replicate";
    else if (experts.empty())
      plan = "; every hot expert has max_replicas_per_expert = "
             + std::to_string(st.options.max_replicas_per_expert)
             + " replicas already";
    else if (spare == nullptr)
      plan = "; no spare node left";
    if (spare != nullptr && !experts.empty()) {
      auto node = render_endpoint(spare->host, spare->port);
      plan = "; spawning replicas of experts " + expert_pool::render(experts)
             + " on " + node;
      planned.push_back(replica_set{node, experts, {}, false});
      st.replicas.push_back(planned.back());
      spawn_remote_experts(
        self, *spare, experts, st.options.checkpoint, st.options.spawn_timeout,
        [self, node](expert_actor handle, std::vector<uint32_t> hosted) {
          on_spawned(self, node, std::move(handle), std::move(hosted));
        },
        [self, node](const caf::error& err) {
          on_spawn_failed(self, node, err);
        });
    }
  }
  VOLT_INFO("autoscaler", "scale_up: " << d.reason << "; hot experts "
                                       << render_hot(d.load.hot) << plan);
  post(self,
       event_json("scale_up", d.reason, d.load, st.options.node, planned));
}

void on_retired(autoscaler_pointer self, const std::string& node,
                const caf::expected<bool>& result) {
  auto& st = self->state;
  auto* set = find_replicas(st, node);
  if (set == nullptr)
    return; // went down meanwhile
  if (!result) {
    VOLT_WARN("autoscaler", "cannot retire replicas of experts "
                              << expert_pool::render(set->experts) << " on "
                              << node << ": " << describe(result.error())
                              << "; they keep serving and the next low-load "
                                 "window tries again");
    set->retiring = false;
    st.policy->owe_scale_down();
    return;
  }
  self->demonitor(set->handle.address());
  VOLT_INFO("autoscaler", "retired replicas of experts "
                            << expert_pool::render(set->experts) << " on "
                            << node << " (drained, then stopped)");
  forget_replicas(st, node);
}

void scale_down(autoscaler_pointer self, const autoscale_decision& d) {
  auto& st = self->state;
  std::vector<replica_set> retiring;
  for (auto i = st.replicas.rbegin(); i != st.replicas.rend(); ++i) {
    if (!i->handle || i->retiring)
      continue;
    i->retiring = true;
    retiring.push_back(*i);
    auto node = i->node;
    retire_expert_host(self, st.engine, i->handle, st.options.spawn_timeout,
                       [self, node](const caf::expected<bool>& result) {
                         on_retired(self, node, result);
                       });
    break;
  }
  VOLT_INFO(
    "autoscaler",
    "scale_down: " << d.reason
                   << (retiring.empty()
                         ? std::string{}
                         : "; retiring replicas of experts "
                             + expert_pool::render(retiring.front().experts)
                             + " on " + retiring.front().node));
  post(self,
       event_json("scale_down", d.reason, d.load, st.options.node, retiring));
}

void on_load(autoscaler_pointer self, const engine_load& load) {
  auto& st = self->state;
  load_sample sample;
  sample.at = clock_type::now();
  sample.queued = load.queued;
  sample.expert_rows = load.expert_rows;
  for (const auto& host : load.hosts)
    sample.node_rows[host.name] += host.rows;
  if (st.options.metrics)
    sample.latency = st.options.metrics->request_latency_buckets();
  // Replicas still being spawned cannot be retired yet.
  st.policy->allow_scale_down(
    std::none_of(st.replicas.begin(), st.replicas.end(),
                 [](const replica_set& r) { return !r.handle; }));
  auto d = st.policy->add(std::move(sample));
  if (d.action == autoscale_decision::kind::none)
    return;
  if (st.options.metrics)
    st.options.metrics->autoscaler_action(to_string(d.action));
  if (d.action == autoscale_decision::kind::scale_up)
    scale_up(self, d);
  else
    scale_down(self, d);
}

std::string status_line(const autoscaler_state& st) {
  std::ostringstream out;
  out << "autoscaler: " << st.policy->pending_scale_ups()
      << " scale_up(s) not yet scaled down, replicas:";
  if (st.replicas.empty())
    out << " none";
  for (const auto& r : st.replicas)
    out << " [experts " << expert_pool::render(r.experts) << " on " << r.node
        << (!r.handle    ? ", spawning"
            : r.retiring ? ", retiring"
                         : "")
        << "]";
  return out.str();
}

void sample(autoscaler_pointer self) {
  auto& st = self->state;
  if (st.sampling)
    return;
  st.sampling = true;
  self->request(st.engine, st.options.spawn_timeout, load_atom_v)
    .then(
      [self](const engine_load& load) {
        self->state.sampling = false;
        on_load(self, load);
      },
      [self](const caf::error& err) {
        self->state.sampling = false;
        static log_throttle throttle{1};
        uint64_t held_back = 0;
        if (throttle.pass(held_back))
          VOLT_WARN("autoscaler",
                    "the engine did not report its load: " << describe(err));
      });
}

} // namespace

autoscaler_actor::behavior_type
autoscaler(autoscaler_pointer self, engine_actor engine, webhook_actor webhook,
           autoscaler_options options) {
  auto& st = self->state;
  st.engine = std::move(engine);
  st.webhook = std::move(webhook);
  st.options = std::move(options);
  st.policy = std::make_unique<autoscale_policy>(st.options.thresholds);
  drop_unexpected_messages(self);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    for (const auto& r : st.replicas)
      if (r.handle && r.handle.address() == msg.source) {
        VOLT_WARN("autoscaler", "replicas of experts "
                                  << expert_pool::render(r.experts) << " on "
                                  << r.node << " are gone ("
                                  << to_string(msg.reason) << ")");
        auto node = r.node; // forget_replicas erases r
        forget_replicas(st, node);
        return;
      }
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    for (const auto& r : self->state.replicas)
      if (r.handle)
        self->send_exit(r.handle, caf::exit_reason::user_shutdown);
    self->quit(msg.reason);
  });
  const auto& t = st.options.thresholds;
  std::ostringstream latency;
  if (t.p99_seconds > 0)
    latency << " or the P99 latency exceeds " << t.p99_seconds << " s";
  VOLT_INFO("autoscaler",
            "sampling every "
              << st.options.interval.count() << " ms: scale_up when more than "
              << t.queue_depth << " requests wait" << latency.str() << " for "
              << t.window.count() << " ms, scale_down after "
              << t.scale_down_window.count() << " ms of low load; "
              << st.options.spare_nodes.size() << " spare nodes; webhook "
              << (st.webhook ? "on" : "off"));
  self->send(self, tick_atom_v);
  return {
    [self](tick_atom) {
      sample(self);
      self->delayed_send(self, self->state.options.interval, tick_atom_v);
    },
    [self](status_atom) { return status_line(self->state); },
  };
}

} // namespace volt
