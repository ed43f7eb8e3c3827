#include "actors/discovery.hpp"

#include "actors/expert_pool.hpp"

#include <algorithm>
#include <set>

#include "base/error.hpp"
#include "base/log.hpp"
#include "caf/io/middleman.hpp"
#include "caf/io/middleman_actor.hpp"
#include "net/worker_record.hpp"

namespace volt {

namespace {

using clock_type = std::chrono::steady_clock;

constexpr auto redis_timeout = std::chrono::milliseconds{300};

/// Adds a target unless known; returns its name.
std::string add_target(discovery_state& st, const endpoint& where,
                       std::vector<uint32_t> spawn, bool from_redis = false) {
  auto name = render_endpoint(where.host, where.port);
  if (st.targets.count(name) > 0)
    return name;
  st.targets.emplace(name, discovery_target{name, where, std::move(spawn),
                                            {}, false, 0, clock_type::now(),
                                            false, from_redis});
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

/// Reads the registered workers from Redis and adds the new ones.
void poll_redis(discovery_pointer self) {
  auto& st = self->state;
  caf::expected<std::vector<std::string>> values{caf::error{}};
  if (!st.redis) {
    auto conn = redis_client::connect(st.options.redis, redis_timeout);
    if (conn)
      st.redis.emplace(std::move(*conn));
    else
      values = std::move(conn.error());
  }
  if (st.redis)
    values = st.redis->values(worker_record_prefix + "*");
  if (!values) {
    st.redis.reset();
    if (st.redis_failures++ % 20 == 0)
      VOLT_WARN("discovery", describe(values.error())
                               << "; known workers stay in use, retrying");
    return;
  }
  if (st.redis_failures > 0)
    VOLT_INFO("discovery", "Redis is reachable again");
  st.redis_failures = 0;
  std::set<std::string> registered;
  for (const auto& text : *values) {
    auto record = parse_worker_record(text);
    if (!record) {
      VOLT_WARN("discovery", "ignoring " << describe(record.error()));
      continue;
    }
    registered.insert(
      add_target(st, endpoint{record->host, record->port}, {}, true));
  }
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
               + std::min<clock_type::duration>(backoff,
                                                std::chrono::seconds{2});
}

void on_host(discovery_pointer self, const std::string& name,
             expert_actor handle, std::vector<uint32_t> experts) {
  auto& st = self->state;
  auto* target = finish_attempt(st, name);
  if (target == nullptr)
    return;
  auto& t = *target;
  t.failures = 0;
  t.handle = handle;
  self->monitor(handle);
  VOLT_INFO("discovery", name << ": expert host with experts "
                              << expert_pool::render(experts));
  self->send(st.engine, host_atom_v, std::move(handle), std::move(experts),
             name);
}

/// Connects to (or spawns on) one target, asynchronously; only a host that
/// says what it hosts joins the engine.
void reach(discovery_pointer self, discovery_target& t) {
  t.busy = true;
  auto name = t.name;
  auto timeout = self->state.options.connect_timeout;
  auto joined = [=](expert_actor handle, std::vector<uint32_t> ids) {
    on_host(self, name, std::move(handle), std::move(ids));
  };
  auto failed = [=](const caf::error& err) { on_failure(self, name, err); };
  if (!t.spawn.empty())
    return spawn_remote_experts(self, t.where, t.spawn, timeout, joined,
                                failed);
  auto mm = self->system().middleman().actor_handle();
  auto ifs = self->system().message_types<expert_actor>();
  self->request(mm, timeout, caf::connect_atom_v, t.where.host, t.where.port)
    .then(
      [=](const caf::node_id&, caf::strong_actor_ptr& ptr,
          const std::set<std::string>& remote_ifs) {
        if (!ptr || remote_ifs != ifs)
          return failed(make_volt_error(volt_errc::invalid_config,
                                        "no Volt expert actor is "
                                        "published there"));
        confirm_expert_host(self, caf::actor_cast<expert_actor>(std::move(ptr)),
                            timeout, joined, failed);
      },
      failed);
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
