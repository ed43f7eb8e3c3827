#include "actors/registrar.hpp"

#include <algorithm>

#include "base/error.hpp"
#include "base/log.hpp"

namespace volt {

namespace {

constexpr auto redis_timeout = std::chrono::milliseconds{300};
constexpr auto max_backoff = std::chrono::milliseconds{2000};

/// One heartbeat: (re)connect if needed, then refresh the record.
std::chrono::milliseconds beat(registrar_pointer self) {
  auto& st = self->state;
  const auto& opts = st.options;
  auto now = std::chrono::steady_clock::now();
  if (opts.metrics) {
    auto rows = opts.metrics->rows_computed();
    auto secs = std::chrono::duration<double>(now - st.last_beat).count();
    st.options.record.load = secs > 0 ? (rows - st.last_rows) / secs : 0.0;
    st.last_rows = rows;
  }
  st.last_beat = now;
  caf::error err;
  if (!st.redis) {
    auto conn = redis_client::connect(opts.redis, redis_timeout);
    if (conn)
      st.redis.emplace(std::move(*conn));
    else
      err = std::move(conn.error());
  }
  if (st.redis) {
    auto key = worker_record_key(opts.record.id);
    // The record is void when its key would have expired, also as a copy.
    auto value = seal_worker_record(opts.record, key, opts.secret,
                                    unix_ms_now() + opts.ttl.count());
    err = st.redis->set(key, value, opts.ttl);
  }
  if (err) {
    st.redis.reset();
    st.registered = false;
    // Log the first failure and then every tenth, not every beat.
    if (st.failures++ % 10 == 0)
      VOLT_WARN("registrar",
                "cannot register in Redis (" << describe(err) << "); retrying");
    auto backoff = opts.heartbeat * (1 << std::min(st.failures, 4));
    return std::min(std::max(backoff, opts.heartbeat),
                    std::max(max_backoff, opts.heartbeat));
  }
  if (!st.registered) {
    st.registered = true;
    st.redis->publish(worker_channel, "join " + opts.record.id);
    VOLT_INFO("registrar", "registered as "
                             << worker_record_key(opts.record.id)
                             << (st.failures > 0 ? " (Redis is back)" : ""));
  }
  st.failures = 0;
  return opts.heartbeat;
}

} // namespace

registrar_actor::behavior_type registrar(registrar_pointer self,
                                         registrar_options options) {
  self->state.options = std::move(options);
  self->state.last_beat = std::chrono::steady_clock::now();
  self->send(self, tick_atom_v);
  return {
    [self](tick_atom) {
      if (self->state.leaving)
        return;
      self->delayed_send(self, beat(self), tick_atom_v);
    },
    [self](unregister_atom) {
      auto& st = self->state;
      st.leaving = true;
      if (!st.redis) {
        auto conn = redis_client::connect(st.options.redis, redis_timeout);
        if (conn)
          st.redis.emplace(std::move(*conn));
      }
      auto key = worker_record_key(st.options.record.id);
      if (!st.redis || st.redis->del(key)) {
        VOLT_WARN("registrar", "could not remove " << key
                                                   << " from Redis; it expires "
                                                      "by itself");
        return false;
      }
      st.redis->publish(worker_channel, "leave " + st.options.record.id);
      VOLT_INFO("registrar", "removed " << key << " from Redis");
      return true;
    },
  };
}

} // namespace volt
