#include "net/actor_system_setup.hpp"

#include <algorithm>

#include "actors/type_ids.hpp"
#include "caf/atom.hpp"
#include "caf/io/middleman.hpp"
#include "caf/timespan.hpp"

namespace volt {

void configure_actor_system(caf::actor_system_config& cfg,
                            std::chrono::milliseconds peer_timeout) {
  cfg.add_message_types<caf::id_block::volt>();
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("middleman.workers", size_t{0});
  if (peer_timeout.count() > 0) {
    // Every node beats at least every 250 ms, so that peers with shorter
    // timeouts (a router's 1 s against a client's 30 s) never see it as dead.
    auto beat = std::min<std::chrono::milliseconds>(
      peer_timeout / 4, std::chrono::milliseconds{250});
    cfg.set("middleman.heartbeat-interval",
            caf::timespan{std::chrono::duration_cast<caf::timespan>(beat)});
    cfg.set(
      "middleman.connection-timeout",
      caf::timespan{std::chrono::duration_cast<caf::timespan>(peer_timeout)});
  }
}

} // namespace volt
