#include "net/actor_system_setup.hpp"

#include <algorithm>
#include <string>
#include <thread>

#include "actors/type_ids.hpp"
#include "caf/atom.hpp"
#include "caf/function_view.hpp"
#include "caf/timespan.hpp"
#include "net/tls_files.hpp"
#include "net/tls_watch.hpp"

namespace volt {

void configure_actor_system(caf::actor_system_config& cfg,
                            std::chrono::milliseconds peer_timeout,
                            const tls_files* tls) {
  cfg.add_message_types<caf::id_block::volt>();
  cfg.load<caf::io::middleman>();
  if (tls != nullptr) {
    watch_tls_handshakes();
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = tls->certificate_path();
    cfg.openssl_key = tls->key_path();
    cfg.openssl_cafile = tls->ca_path();
  }
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("middleman.workers", size_t{0});
  // One worker per core: CAF's default of at least four workers puts two on
  // each core of a 2-core node, where a woken worker then waits for the
  // running one's time slice (measured: expert replies 30-75 µs late, and
  // 32 concurrent requests 20 % slower than with two workers).
  cfg.set("scheduler.max-threads",
          size_t{std::max(2u, std::thread::hardware_concurrency())});
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

caf::io::middleman_actor link_manager(caf::actor_system& sys) {
  if (sys.has_openssl_manager())
    return sys.openssl_manager().actor_handle();
  return sys.middleman().actor_handle();
}

caf::expected<uint16_t> open_link_port(caf::actor_system& sys, uint16_t port,
                                       const char* host) {
  if (!sys.has_openssl_manager())
    return sys.middleman().open(port, host);
  auto f = caf::make_function_view(link_manager(sys));
  return f(caf::open_atom_v, port, std::string{host}, false);
}

} // namespace volt
