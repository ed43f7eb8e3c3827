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

/// Adds a target unless known; returns its name.
std::string add_target(discovery_state& st, const endpoint& where,
                       std::vector<uint32_t> spawn, bool from_redis = false) {
  auto name = render_endpoint(where.host, where.port);
  if (st.targets.count(name) > 0)
    return name;
  discovery_target target;
  target.name = name;
  target.where = where;
  target.spawn = std::move(spawn);
  target.next_try = clock_type::now();
  target.from_redis = from_redis;
  st.targets.emplace(name, std::move(target));
  return name;
}

/// Forgets workers found in Redis whose record is gone (deregistered or
/// expired) while they are not connected; connected ones stay in use, so
/// that a Redis restart fails nothing.
void forget_departed(discovery_state& st,
                     const std::set<std::string>& registered) {
  for (auto i = st.targets.begin(); i != st.targets.end();) {
    auto& t = i->second;
    if (t.from_redis && !t.handle && !t.busy
        && registered.count(t.name) == 0) {
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
    registered.insert(
      add_target(st, endpoint{record->host, record->port}, {}, true));
  }
  // A key that is gone or valid again is logged anew if it turns bad.
  for (auto i = st.refused_records.begin(); i != st.refused_records.end();)
    i = refused.count(*i) > 0 ? std::next(i) : st.refused_records.erase(i);
  forget_departed(st, registered);
}

/// The target `name` with its connect attempt finished, or nullptr when it is
/// no longer known.
discovery_target* finish_attempt(discovery_state& st, const std::string& name) {
  auto i = st.targets.find(name);
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

void on_failure(discovery_pointer self, const std::string& name,
                const caf::error& err) {
  auto& st = self->state;
  auto* target = finish_attempt(st, name);
  if (target == nullptr)
    return;
  auto& t = *target;
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

void on_host(discovery_pointer self, const std::string& name,
             expert_actor handle, std::vector<uint32_t> experts) {
  auto& st = self->state;
  auto* target = finish_attempt(st, name);
  if (target == nullptr)
    return;
  auto& t = *target;
  t.failures = 0;
  t.refused_checkpoint.clear();
  t.handle = handle;
  self->monitor(handle);
  VOLT_INFO("discovery", name << ": expert host with experts "
                              << expert_pool::render(experts));
  self->send(st.engine, host_atom_v, std::move(handle), std::move(experts),
             name);
}

/// Refuses a host whose checkpoint is not the router's: nothing is routed
/// there. A connected worker is asked again after the longest back-off (it
/// may be restarted on the right checkpoint); an actor spawned for this
/// router is stopped and its node not tried again.
void refuse_host(discovery_pointer self, const std::string& name,
                 expert_actor handle, const expert_hello& hello) {
  auto& st = self->state;
  auto* target = finish_attempt(st, name);
  if (target == nullptr)
    return;
  auto& t = *target;
  if (t.refused_checkpoint != hello.checkpoint) {
    t.refused_checkpoint = hello.checkpoint;
    VOLT_ERROR("discovery",
               name << ": refused: its checkpoint fingerprint "
                    << (hello.checkpoint.empty() ? "(none)" : hello.checkpoint)
                    << " differs from this router's " << st.options.checkpoint
                    << " (another checkpoint, or another version of it); no "
                       "rows go there");
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
void confirm_host(discovery_pointer self, const std::string& name,
                  expert_actor handle) {
  self->request(handle, self->state.options.connect_timeout, hosted_atom_v)
    .then(
      [=](expert_hello& hello) {
        if (hello.checkpoint != self->state.options.checkpoint)
          return refuse_host(self, name, handle, hello);
        on_host(self, name, handle, std::move(hello.experts));
      },
      [=](caf::error& err) { on_failure(self, name, err); });
}

/// Connects to (or spawns on) one target, asynchronously.
void reach(discovery_pointer self, discovery_target& t) {
  t.busy = true;
  auto name = t.name;
  auto spawn = t.spawn;
  auto checkpoint = self->state.options.checkpoint;
  auto timeout = self->state.options.connect_timeout;
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
            ->request(mm, timeout, caf::spawn_atom_v, nid, expert_actor_type,
                      caf::make_message(spawn, checkpoint), ifs)
            .then(
              [=](caf::strong_actor_ptr& spawned) {
                if (!spawned)
                  return on_failure(self, name,
                                    make_volt_error(volt_errc::internal,
                                                    "remote spawn returned "
                                                    "nothing"));
                // A spawn that failed on the node answers this with why;
                // only a live host joins the engine.
                confirm_host(self, name,
                             caf::actor_cast<expert_actor>(std::move(spawned)));
              },
              [=](caf::error& err) { on_failure(self, name, err); });
          return;
        }
        if (!ptr || remote_ifs != ifs)
          return on_failure(self, name,
                            make_volt_error(volt_errc::invalid_config,
                                            "no Volt expert actor is "
                                            "published there"));
        confirm_host(self, name,
                     caf::actor_cast<expert_actor>(std::move(ptr)));
      },
      [=](caf::error& err) { on_failure(self, name, err); });
}

void tick(discovery_pointer self) {
  auto& st = self->state;
  if (st.options.mode == discovery_mode::redis)
    poll_redis(self);
  auto now = clock_type::now();
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
    for (auto& [name, t] : self->state.targets)
      if (t.handle && t.handle.address() == msg.source) {
        VOLT_WARN("discovery", name << ": expert host is down ("
                                    << to_string(msg.reason)
                                    << "); reconnecting when it is back");
        t.handle = nullptr;
        t.next_try = clock_type::now();
      }
  });
  self->send(self, tick_atom_v);
  return {
    [self](tick_atom) { tick(self); },
  };
}

} // namespace volt
