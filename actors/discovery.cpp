#include "actors/discovery.hpp"

#include "actors/expert_pool.hpp"

#include <algorithm>
#include <set>

#include "base/error.hpp"
#include "base/log.hpp"
#include "caf/io/middleman.hpp"
#include "caf/io/middleman_actor.hpp"
#include "net/actor_system_setup.hpp"
#include "net/signed_worker_record.hpp"

namespace volt {

namespace {

using clock_type = std::chrono::steady_clock;

constexpr auto redis_timeout = std::chrono::milliseconds{300};

/// The longest wait between two tries of one target.
constexpr auto max_backoff = std::chrono::seconds{2};

/// Adds a target under `key` (default: the node's name) unless known;
/// returns it.
discovery_target& add_target(discovery_state& st, const endpoint& where,
                             std::vector<uint32_t> spawn,
                             bool from_redis = false, std::string key = {}) {
  auto name = render_endpoint(where.host, where.port);
  if (key.empty())
    key = name;
  if (auto i = st.targets.find(key); i != st.targets.end())
    return i->second;
  discovery_target t;
  t.key = key;
  t.name = std::move(name);
  t.where = where;
  t.spawn = std::move(spawn);
  t.next_try = clock_type::now();
  t.from_redis = from_redis;
  return st.targets.emplace(std::move(key), std::move(t)).first->second;
}

/// Forgets workers found in Redis whose record is gone (deregistered or
/// expired) while they are not connected; connected ones stay in use, so
/// that a Redis restart fails nothing.
void forget_departed(discovery_state& st,
                     const std::set<std::string>& registered) {
  for (auto i = st.targets.begin(); i != st.targets.end();) {
    auto& t = i->second;
    if (t.from_redis && !t.handle && !t.busy
        && registered.count(t.key) == 0) {
      VOLT_INFO("discovery", t.name << ": no longer registered in Redis; "
                                       "not retrying it");
      i = st.targets.erase(i);
    } else {
      ++i;
    }
  }
}

/// Logs a refused Redis record once per key (and at most a few lines a
/// second when many keys are bad); it is never used.
void note_refused(discovery_state& st, const std::string& key,
                  const caf::error& why) {
  if (!st.refused_records.insert(key).second)
    return;
  uint64_t held_back = 0;
  if (!st.refusal_log->pass(held_back))
    return;
  auto more = held_back == 0 ? std::string{}
                             : " (and " + std::to_string(held_back)
                                 + " more records not logged)";
  VOLT_WARN("discovery", "ignoring the Redis record " << describe(why) << more);
}

/// Reads the registered workers from Redis and adds the new ones.
void poll_redis(discovery_pointer self) {
  auto& st = self->state;
  caf::expected<std::vector<std::pair<std::string, std::string>>> entries{
    caf::error{}};
  if (!st.redis) {
    auto conn = redis_client::connect(st.options.redis, redis_timeout);
    if (conn)
      st.redis.emplace(std::move(*conn));
    else
      entries = std::move(conn.error());
  }
  if (st.redis)
    entries = st.redis->entries(worker_record_prefix + "*");
  if (!entries) {
    st.redis.reset();
    if (st.redis_failures++ % 20 == 0)
      VOLT_WARN("discovery", describe(entries.error())
                               << "; known workers stay in use, retrying");
    return;
  }
  if (st.redis_failures > 0)
    VOLT_INFO("discovery", "Redis is reachable again");
  st.redis_failures = 0;
  std::set<std::string> registered;
  std::set<std::string> refused;
  auto now = unix_ms_now();
  for (const auto& [key, value] : *entries) {
    auto record = open_worker_record(key, value, st.options.secret, now);
    if (!record) {
      note_refused(st, key, record.error());
      refused.insert(key);
      continue;
    }
    endpoint where{record->host, record->port};
    if (st.released.count(render_endpoint(where.host, where.port)) > 0)
      continue;
    auto& t = add_target(st, where, {}, true);
    t.id = record->id;
    registered.insert(t.key);
  }
  // A key that is gone or valid again is logged anew if it turns bad.
  for (auto i = st.refused_records.begin(); i != st.refused_records.end();)
    i = refused.count(*i) > 0 ? std::next(i) : st.refused_records.erase(i);
  forget_departed(st, registered);
}

/// The target `key` with its connect attempt finished, or nullptr when it is
/// no longer known.
discovery_target* finish_attempt(discovery_state& st, const std::string& key) {
  auto i = st.targets.find(key);
  if (i == st.targets.end())
    return nullptr;
  i->second.busy = false;
  return &i->second;
}

/// Whether a spawn failed for good: the node refused the experts (its model
/// lacks them, its checkpoint is bad), which no retry can change.
bool spawn_refused(const discovery_target& t, const caf::error& err) {
  return !t.spawn.empty()
         && (err == volt_errc::invalid_checkpoint
             || err == volt_errc::invalid_config);
}

void on_failure(discovery_pointer self, const std::string& key,
                const caf::error& err) {
  auto& st = self->state;
  auto* target = finish_attempt(st, key);
  if (target == nullptr)
    return;
  auto& t = *target;
  const auto& name = t.name;
  t.last_error = describe(err);
  if (t.placed) {
    // Asked for by an operator (or the autoscaler), who hears why at once.
    VOLT_WARN("discovery", name << ": cannot spawn experts "
                                << expert_pool::render(t.spawn)
                                << " there: " << describe(err));
    t.placed->deliver(make_volt_error(spawn_refused(t, err)
                                        ? volt_errc::invalid_request
                                        : volt_errc::internal,
                                      "spawn on " + name
                                        + " failed: " + describe(err)));
    st.targets.erase(key);
    return;
  }
  if (spawn_refused(t, err)) {
    t.given_up = true;
    VOLT_ERROR("discovery",
               name << ": cannot spawn experts " << expert_pool::render(t.spawn)
                    << " there: " << describe(err)
                    << "; not retrying (fix [router] placement or that node's "
                       "[model] path, then restart the router)");
    return;
  }
  if (t.failures++ % 10 == 0)
    VOLT_WARN("discovery", name << ": " << describe(err) << "; retrying");
  auto backoff = st.options.poll * (1 << std::min(t.failures, 4));
  t.next_try = clock_type::now()
               + std::min<clock_type::duration>(backoff, max_backoff);
}

void on_host(discovery_pointer self, const std::string& key,
             expert_actor handle, std::vector<uint32_t> experts,
             bool spawned) {
  auto& st = self->state;
  auto* target = finish_attempt(st, key);
  if (target == nullptr) {
    // Released while it was being reached: what was spawned for it goes.
    if (spawned)
      self->send_exit(handle, caf::exit_reason::user_shutdown);
    return;
  }
  auto& t = *target;
  t.failures = 0;
  t.refused_checkpoint.clear();
  t.last_error.clear();
  t.handle = handle;
  t.hosted = experts;
  self->monitor(handle);
  VOLT_INFO("discovery", t.name << ": expert host with experts "
                                << expert_pool::render(experts));
  self->send(st.engine, host_atom_v, std::move(handle), std::move(experts),
             t.name);
  // After host_atom: the engine knows the host before the requester hears.
  if (t.placed) {
    t.placed->deliver(t.name);
    t.placed.reset();
  }
}

/// Refuses a host whose checkpoint is not the router's: nothing is routed
/// there. A connected worker is asked again after the longest back-off (it
/// may be restarted on the right checkpoint); an actor spawned for this
/// router is stopped and its node not tried again.
void refuse_host(discovery_pointer self, const std::string& key,
                 expert_actor handle, const expert_hello& hello) {
  auto& st = self->state;
  auto* target = finish_attempt(st, key);
  if (target == nullptr)
    return;
  auto& t = *target;
  if (t.refused_checkpoint != hello.checkpoint) {
    t.refused_checkpoint = hello.checkpoint;
    VOLT_ERROR("discovery",
               t.name << ": refused: its checkpoint fingerprint "
                      << (hello.checkpoint.empty() ? "(none)"
                                                   : hello.checkpoint)
                      << " differs from this router's "
                      << st.options.checkpoint
                      << " (another checkpoint, or another version of it); "
                         "no rows go there");
  }
  if (t.placed) {
    // An operator's spawn: refused once, and the operator hears why.
    self->send_exit(handle, caf::exit_reason::user_shutdown);
    return on_failure(self, key,
                      make_volt_error(volt_errc::invalid_config,
                                      "the node serves another checkpoint "
                                      "(fingerprint "
                                        + hello.checkpoint + ")"));
  }
  if (!t.spawn.empty()) {
    self->send_exit(handle, caf::exit_reason::user_shutdown);
    t.given_up = true;
    return;
  }
  t.next_try = clock_type::now() + max_backoff;
}

/// Asks a connected or spawned expert actor for its hello; it joins the
/// engine only with an answer naming the router's checkpoint.
void confirm_host(discovery_pointer self, const std::string& key,
                  expert_actor handle, bool spawned) {
  self->request(handle, self->state.options.connect_timeout, hosted_atom_v)
    .then(
      [=](expert_hello& hello) {
        if (hello.checkpoint != self->state.options.checkpoint)
          return refuse_host(self, key, handle, hello);
        on_host(self, key, handle, std::move(hello.experts), spawned);
      },
      [=](caf::error& err) { on_failure(self, key, err); });
}

/// Connects to (or spawns on) one target, asynchronously.
void reach(discovery_pointer self, discovery_target& t) {
  t.busy = true;
  auto key = t.key;
  auto spawn = t.spawn;
  auto checkpoint = self->state.options.checkpoint;
  auto timeout = self->state.options.connect_timeout;
  // The node loads the weights before it answers a spawn asked for, which
  // may take minutes: tick() enforces place_timeout instead of a request
  // timeout, which CAF's clock would hold (with this actor) for its whole
  // length, delaying the router's shutdown.
  auto spawn_timeout = t.placed ? caf::duration{caf::infinite}
                                : caf::duration{timeout};
  // Over TLS when the node has its files: the link is then authenticated
  // both ways before any message, a spawn included, crosses it.
  auto mm = link_manager(self->system());
  auto ifs = self->system().message_types<expert_actor>();
  self->request(mm, timeout, caf::connect_atom_v, t.where.host, t.where.port)
    .then(
      [=](const caf::node_id& nid, caf::strong_actor_ptr& ptr,
          const std::set<std::string>& remote_ifs) {
        if (!spawn.empty()) {
          self
            ->request(mm, spawn_timeout, caf::spawn_atom_v, nid,
                      expert_actor_type, caf::make_message(spawn, checkpoint),
                      ifs)
            .then(
              [=](caf::strong_actor_ptr& spawned) {
                if (!spawned)
                  return on_failure(self, key,
                                    make_volt_error(volt_errc::internal,
                                                    "remote spawn returned "
                                                    "nothing"));
                // A spawn that failed on the node answers this with why;
                // only a live host joins the engine.
                confirm_host(self, key,
                             caf::actor_cast<expert_actor>(std::move(spawned)),
                             true);
              },
              [=](caf::error& err) { on_failure(self, key, err); });
          return;
        }
        if (!ptr || remote_ifs != ifs)
          return on_failure(self, key,
                            make_volt_error(volt_errc::invalid_config,
                                            "no Volt expert actor is "
                                            "published there"));
        confirm_host(self, key, caf::actor_cast<expert_actor>(std::move(ptr)),
                     false);
      },
      [=](caf::error& err) { on_failure(self, key, err); });
}

/// Spawns `experts` on `node` once, on request; answers once they joined the
/// engine.
caf::result<std::string> place(discovery_pointer self, const std::string& node,
                               std::vector<uint32_t> experts) {
  auto& st = self->state;
  auto where = parse_endpoint(node);
  if (!where)
    return make_volt_error(volt_errc::invalid_request,
                           "spawn: expected HOST:PORT, got '" + node + "'");
  if (experts.empty())
    return make_volt_error(volt_errc::invalid_request,
                           "spawn: no experts named");
  std::sort(experts.begin(), experts.end());
  experts.erase(std::unique(experts.begin(), experts.end()), experts.end());
  auto name = render_endpoint(where->host, where->port);
  auto key = name + " [" + expert_pool::render(experts) + "]";
  if (st.targets.count(key) > 0)
    return make_volt_error(volt_errc::invalid_request,
                           "spawn: experts " + expert_pool::render(experts)
                             + " are already placed on " + name);
  st.released.erase(name);
  auto& t = add_target(st, *where, experts, false, key);
  auto promise = self->make_response_promise<std::string>();
  t.placed = promise;
  t.placed_deadline = clock_type::now() + st.options.place_timeout;
  VOLT_INFO("discovery", name << ": spawning experts "
                              << expert_pool::render(experts)
                              << " there on request");
  reach(self, t);
  return promise;
}

/// Forgets every target on `node`, stopping the expert actors spawned there
/// (a worker's own published host keeps running); answers whether any was
/// known.
bool release(discovery_pointer self, const std::string& node) {
  auto& st = self->state;
  bool known = false;
  for (auto i = st.targets.begin(); i != st.targets.end();) {
    auto& t = i->second;
    if (t.name != node) {
      ++i;
      continue;
    }
    known = true;
    if (t.handle) {
      self->demonitor(t.handle.address());
      if (!t.spawn.empty())
        self->send_exit(t.handle, caf::exit_reason::user_shutdown);
    }
    if (t.placed)
      t.placed->deliver(make_volt_error(volt_errc::invalid_request,
                                        "spawn: " + node
                                          + " was released meanwhile"));
    i = st.targets.erase(i);
  }
  st.released.insert(node);
  VOLT_INFO("discovery", node << ": released; not reconnected until experts "
                                 "are placed there again");
  return known;
}

/// The targets as nodes, one entry per node.
node_report list_targets(const discovery_state& st) {
  node_report report;
  std::map<std::string, size_t> index;
  for (const auto& [key, t] : st.targets) {
    auto [at, added] = index.emplace(t.name, report.nodes.size());
    if (added) {
      node_entry fresh;
      fresh.role = "worker";
      fresh.address = t.name;
      report.nodes.push_back(std::move(fresh));
    }
    auto& e = report.nodes[at->second];
    if (!t.id.empty())
      e.id = t.id;
    const auto& experts = t.handle ? t.hosted : t.spawn;
    e.experts.insert(e.experts.end(), experts.begin(), experts.end());
    std::sort(e.experts.begin(), e.experts.end());
    e.experts.erase(std::unique(e.experts.begin(), e.experts.end()),
                    e.experts.end());
    auto liveness = t.handle      ? "live"
                    : t.given_up  ? "refused"
                    : t.failures  ? "down"
                                  : "connecting";
    // A node is live while any of its hosts is.
    if (e.liveness.empty() || std::string{liveness} == "live")
      e.liveness = liveness;
    if (!t.handle && !t.last_error.empty())
      e.detail += (e.detail.empty() ? "" : "; ") + t.last_error;
  }
  return report;
}

void tick(discovery_pointer self) {
  auto& st = self->state;
  if (st.options.mode == discovery_mode::redis)
    poll_redis(self);
  auto now = clock_type::now();
  // A spawn asked for that the node has not answered in time fails; a late
  // answer finds no target (and stops what it spawned).
  std::vector<std::string> overdue;
  for (auto& [key, t] : st.targets)
    if (t.placed && t.busy && now >= t.placed_deadline)
      overdue.push_back(key);
  for (const auto& key : overdue)
    on_failure(self, key,
               make_volt_error(volt_errc::internal,
                               "no answer within "
                                 + std::to_string(
                                   st.options.place_timeout.count())
                                 + " ms"));
  for (auto& [name, t] : st.targets)
    if (!t.handle && !t.busy && !t.given_up && now >= t.next_try)
      reach(self, t);
  self->delayed_send(self, st.options.poll, tick_atom_v);
}

} // namespace

discovery_actor::behavior_type discovery(discovery_pointer self,
                                         engine_actor engine,
                                         discovery_options options) {
  auto& st = self->state;
  st.engine = std::move(engine);
  st.options = std::move(options);
  for (const auto& w : st.options.workers)
    if (auto ep = parse_endpoint(w))
      add_target(st, *ep, {});
  for (const auto& p : st.options.placement)
    if (auto ep = parse_endpoint(p.node))
      add_target(st, *ep, p.experts);
  self->set_down_handler([self](caf::down_msg& msg) {
    for (auto& [key, t] : self->state.targets)
      if (t.handle && t.handle.address() == msg.source) {
        VOLT_WARN("discovery", t.name << ": expert host is down ("
                                      << to_string(msg.reason)
                                      << "); reconnecting when it is back");
        t.last_error = "expert host is down (" + to_string(msg.reason) + ")";
        t.handle = nullptr;
        t.next_try = clock_type::now();
      }
  });
  self->send(self, tick_atom_v);
  return {
    [self](tick_atom) { tick(self); },
    [self](place_atom, const std::string& node,
           std::vector<uint32_t>& experts) -> caf::result<std::string> {
      return place(self, node, std::move(experts));
    },
    [self](release_atom, const std::string& node) {
      return release(self, node);
    },
    [self](inspect_atom) { return list_targets(self->state); },
  };
}

} // namespace volt
