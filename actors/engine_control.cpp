#include "actors/engine_control.hpp"

#include <algorithm>
#include <map>
#include <memory>

#include "base/error.hpp"
#include "base/log.hpp"
#include "config/endpoint.hpp"

namespace volt {

namespace {

using clock_type = engine_clock;

/// Host names in the pool for actors of this process.
constexpr const char* local_host = "local";

/// How long an inspection waits for the discovery's list of nodes.
constexpr auto discovery_answer_timeout = std::chrono::seconds{10};

void add_experts(std::vector<uint32_t>& into,
                 const std::vector<uint32_t>& more) {
  into.insert(into.end(), more.begin(), more.end());
  std::sort(into.begin(), into.end());
  into.erase(std::unique(into.begin(), into.end()), into.end());
}

bool serves(const expert_host& h, uint32_t expert) {
  return std::binary_search(h.experts.begin(), h.experts.end(), expert);
}

node_entry self_entry(const engine_state& st) {
  node_entry e;
  e.id = st.options.node_id;
  e.role = st.options.role;
  e.liveness = st.stopped ? "stopped" : "up";
  if (st.stopped)
    e.detail = describe(st.stopped);
  add_experts(e.experts, st.exec->local_experts());
  for (const auto& [id, h] : st.pool.hosts())
    if (h.name == local_host)
      add_experts(e.experts, h.experts);
  return e;
}

/// The pool's hosts on other nodes, as nodes by address.
std::map<std::string, node_entry> pool_nodes(const engine_state& st,
                                             clock_type::time_point now) {
  std::map<std::string, node_entry> nodes;
  for (const auto& [id, h] : st.pool.hosts()) {
    if (h.name == local_host)
      continue;
    auto& e = nodes[h.name];
    e.role = "worker";
    e.address = h.name;
    e.liveness = h.retiring ? "draining" : "live";
    add_experts(e.experts, h.experts);
    e.rows_in_flight += h.inflight_rows;
    e.rows_sent += h.rows_sent;
    e.rows_per_second += st.pool.host_rates(id, now).rows_per_second;
  }
  return nodes;
}

/// Adds the worker nodes: the discovery's targets in its order, with what
/// the pool knows of them, then hosts the discovery does not know.
void add_workers(node_report& report, std::vector<node_entry> targets,
                 std::map<std::string, node_entry> pool) {
  for (auto& t : targets) {
    if (auto i = pool.find(t.address); i != pool.end()) {
      const auto& p = i->second;
      add_experts(t.experts, p.experts);
      t.liveness = p.liveness; // the engine's view: live or draining
      t.rows_in_flight = p.rows_in_flight;
      t.rows_sent = p.rows_sent;
      t.rows_per_second = p.rows_per_second;
      pool.erase(i);
    }
    report.nodes.push_back(std::move(t));
  }
  for (auto& [name, p] : pool)
    report.nodes.push_back(std::move(p));
}

std::vector<expert_entry> expert_entries(const engine_state& st,
                                         clock_type::time_point now) {
  auto in_flight = st.dispatch->rows_in_flight();
  const auto& local = st.exec->local_experts();
  auto n = static_cast<uint32_t>(st.exec->config().num_local_experts);
  std::vector<expert_entry> entries(n);
  for (uint32_t e = 0; e < n; ++e) {
    auto& entry = entries[e];
    entry.expert = e;
    entry.in_process = std::binary_search(local.begin(), local.end(), e);
    for (const auto& [id, h] : st.pool.hosts())
      if (serves(h, e))
        entry.hosts.push_back(h.name);
    if (auto i = in_flight.find(e); i != in_flight.end())
      entry.rows_in_flight = i->second;
    auto rates = st.pool.expert_rates(e, now);
    entry.requests_per_second = rates.batches_per_second;
    entry.rows_per_second = rates.rows_per_second;
  }
  return entries;
}

kv_entry kv_of(const engine_state& st) {
  return {st.exec->where(), st.sched->pages().stats()};
}

/// "host:port" as the pool names hosts, or an error naming `what`.
caf::expected<std::string> node_name(const std::string& what,
                                     const std::string& node) {
  auto where = parse_endpoint(node);
  if (!where)
    return make_volt_error(volt_errc::invalid_request,
                           what + ": expected HOST:PORT, got '" + node + "'");
  return render_endpoint(where->host, where->port);
}

} // namespace

caf::result<node_report> inspect_engine(engine_pointer self) {
  auto& st = self->state;
  auto now = clock_type::now();
  auto report = std::make_shared<node_report>();
  report->nodes.push_back(self_entry(st));
  report->experts = expert_entries(st, now);
  st.sched->report(report->queue, report->requests, now);
  report->queue.step_running = st.step_running;
  report->queue.missing_experts = missing_experts(st);
  report->kv = kv_of(st);
  if (st.options.metrics)
    report->metrics = st.options.metrics->text();
  auto workers = pool_nodes(st, now);
  if (!st.finder) {
    add_workers(*report, {}, std::move(workers));
    return std::move(*report);
  }
  auto promise = self->make_response_promise<node_report>();
  self->request(st.finder, discovery_answer_timeout, inspect_atom_v)
    .then(
      [=](node_report& found) mutable {
        add_workers(*report, std::move(found.nodes), workers);
        promise.deliver(std::move(*report));
      },
      [=](caf::error& err) mutable {
        add_workers(*report, {}, workers);
        report->nodes.front().detail
          = "its discovery did not list its workers: " + describe(err);
        promise.deliver(std::move(*report));
      });
  return promise;
}

caf::result<std::string> place_experts(engine_pointer self, std::string node,
                                       std::vector<uint32_t> experts) {
  auto& st = self->state;
  if (!st.finder)
    return make_volt_error(volt_errc::invalid_request,
                           "spawn: this node has no discovery to place "
                           "experts with (only a router's engine has one)");
  auto name = node_name("spawn", node);
  if (!name)
    return std::move(name.error());
  if (experts.empty())
    return make_volt_error(volt_errc::invalid_request,
                           "spawn: name at least one expert");
  auto n = static_cast<uint32_t>(st.exec->config().num_local_experts);
  for (auto e : experts)
    if (e >= n)
      return make_volt_error(volt_errc::invalid_request,
                             "spawn: expert " + std::to_string(e)
                               + " is outside the model (" + std::to_string(n)
                               + " experts, 0 to " + std::to_string(n - 1)
                               + ")");
  return self->delegate(st.finder, place_atom_v, std::move(*name),
                        std::move(experts));
}

caf::result<std::vector<uint32_t>> drain_node(engine_pointer self,
                                              const std::string& node) {
  auto& st = self->state;
  auto name = node_name("drain", node);
  if (!name)
    return std::move(name.error());
  pending_drain d;
  d.node = *name;
  std::vector<std::string> known;
  for (const auto& [id, h] : st.pool.hosts()) {
    if (h.name != d.node) {
      if (h.name != local_host
          && std::find(known.begin(), known.end(), h.name) == known.end())
        known.push_back(h.name);
      continue;
    }
    if (h.retiring)
      return make_volt_error(volt_errc::invalid_request,
                             "drain: " + d.node
                               + " is already being retired (by a drain or "
                                 "by the autoscaler's scale-down)");
    d.hosts.push_back(id);
    add_experts(d.experts, h.experts);
  }
  if (d.hosts.empty()) {
    std::string list;
    for (const auto& k : known)
      list += (list.empty() ? "" : ", ") + k;
    return make_volt_error(volt_errc::invalid_request,
                           "drain: no expert host at " + d.node + " ("
                             + (list.empty() ? "the node has none"
                                             : "hosts: " + list)
                             + ")");
  }
  // Refused rather than leaving requests to wait for a host.
  std::vector<uint32_t> only_here;
  const auto& local = st.exec->local_experts();
  for (auto e : d.experts) {
    bool elsewhere = std::binary_search(local.begin(), local.end(), e);
    for (const auto& [id, h] : st.pool.hosts())
      elsewhere |= h.name != d.node && !h.retiring && serves(h, e);
    if (!elsewhere)
      only_here.push_back(e);
  }
  if (!only_here.empty())
    return make_volt_error(volt_errc::invalid_request,
                           "drain: " + d.node + " is the only live host of "
                             + "experts " + expert_pool::render(only_here)
                             + "; spawn them on another node first");
  for (auto id : d.hosts)
    st.pool.host(id).retiring = true;
  VOLT_INFO("engine", "draining expert host "
                        << d.node
                        << ": no new rows; released once its rows in flight "
                           "are answered");
  d.promise = self->make_response_promise<std::vector<uint32_t>>();
  auto promise = d.promise;
  st.drains.push_back(std::move(d));
  release_drained(self);
  return promise;
}

void release_drained(engine_pointer self) {
  auto& st = self->state;
  for (auto i = st.drains.begin(); i != st.drains.end();) {
    bool busy = false;
    for (auto id : i->hosts)
      busy |= st.pool.hosts().count(id) > 0
              && st.pool.host(id).inflight_rows > 0;
    if (busy) {
      ++i;
      continue;
    }
    for (auto id : i->hosts)
      if (st.pool.hosts().count(id) > 0) {
        self->demonitor(st.pool.host(id).handle.address());
        st.pool.remove(id);
      }
    if (st.options.metrics)
      st.options.metrics->live_workers(st.pool.remote_count());
    VOLT_INFO("engine", "expert host " << i->node
                                       << " drained and released (experts "
                                       << expert_pool::render(i->experts)
                                       << ")");
    auto promise = i->promise;
    auto experts = i->experts;
    if (st.finder)
      self->request(st.finder, discovery_answer_timeout, release_atom_v, i->node)
        .then([=](bool) mutable { promise.deliver(experts); },
              [=](caf::error& err) mutable { promise.deliver(err); });
    else
      promise.deliver(experts);
    i = st.drains.erase(i);
  }
}

/// Forgets the hosts being retired that have no rows in flight any more,
/// and answers whoever asked to retire them.
void finish_retirements(engine_pointer self) {
  auto& st = self->state;
  for (auto i = st.retiring.begin(); i != st.retiring.end();) {
    auto id = i->first;
    if (st.pool.hosts().count(id) > 0) {
      auto& host = st.pool.host(id);
      if (host.inflight_rows > 0) {
        ++i;
        continue;
      }
      self->demonitor(host.handle.address());
      VOLT_INFO("engine", "expert host " << host.name << " retired");
      st.pool.remove(id);
      if (st.options.metrics)
        st.options.metrics->live_workers(st.pool.remote_count());
    } // else it went down while retiring: out of use all the same
    for (auto& promise : i->second)
      promise.deliver(true);
    i = st.retiring.erase(i);
  }
}

/// Stops picking the host of `handle` and answers once its rows in flight
/// are in and the engine has forgotten it; refuses to retire the last live
/// host of an expert, which would fail the requests that need it.
caf::result<bool> retire_host(engine_pointer self, const expert_actor& handle) {
  auto& st = self->state;
  auto id = handle ? st.pool.find(handle.address()) : std::nullopt;
  if (!id)
    return false;
  auto& host = st.pool.host(*id);
  if (auto only = st.pool.served_only_by(*id); !only.empty())
    return make_volt_error(volt_errc::invalid_request,
                           "cannot retire expert host " + host.name
                             + ": it is the last live host of experts "
                             + expert_pool::render(only));
  if (!host.retiring)
    VOLT_INFO("engine", "retiring expert host " << host.name << " ("
                                                << host.inflight_rows
                                                << " rows in flight)");
  host.retiring = true;
  auto promise = self->make_response_promise<bool>();
  st.retiring[*id].push_back(promise);
  finish_retirements(self);
  return promise;
}

/// Rows of each expert that a step sends out (engine_load's expert_rows).
void count_routed(engine_state& st, const expert_rows& work) {
  for (size_t i = 0; i < work.expert_ids.size(); ++i)
    if (work.expert_ids[i] < st.routed_rows.size())
      st.routed_rows[work.expert_ids[i]] += work.row_counts[i];
}

engine_load load_of(const engine_state& st) {
  engine_load load;
  load.queued = st.sched->waiting();
  load.running = st.sched->running();
  load.expert_rows = st.routed_rows;
  load.expert_hosts = st.pool.live_hosts_per_expert();
  for (const auto& [id, host] : st.pool.hosts())
    load.hosts.push_back(host_load{host.name, host.experts, host.rows_sent,
                                   host.inflight_rows, host.retiring});
  return load;
}

} // namespace volt
