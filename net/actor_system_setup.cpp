#include "net/actor_system_setup.hpp"

#include "actors/type_ids.hpp"
#include "caf/atom.hpp"
#include "caf/io/middleman.hpp"

namespace volt {

void configure_actor_system(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::volt>();
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("middleman.workers", size_t{0});
}

} // namespace volt
