#pragma once

#include <chrono>
#include <cstdint>

#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/io/middleman.hpp"
#include "caf/io/middleman_actor.hpp"
#include "caf/openssl/manager.hpp"
#include "caf/openssl/publish.hpp"
#include "caf/openssl/remote_actor.hpp"

namespace volt {

class tls_files;

/// Applies Volt's CAF settings: our type-ID block, the middleman (BASP over
/// TCP) and the scheduler. On the few cores of our nodes, CAF's `sharing`
/// policy and an in-loop middleman (`middleman.workers = 0`) cut a 4 KiB round
/// trip from ~210 µs to ~70 µs (DESIGN.md §4), and one scheduler worker per
/// core (at least two; CAF's default is at least four) keeps woken actors
/// from waiting behind a running one. Blocking work runs in detached actors.
/// With a `peer_timeout`, BASP heartbeats go out every quarter of it (at least
/// every 250 ms) and a peer silent for that long (a frozen process) is
/// disconnected, so that monitors fire; CAF leaves both off by default.
/// With `tls` (which must outlive the actor system), CAF's OpenSSL module is
/// loaded with its files: every link this process opens or accepts through
/// `link_manager` then needs a certificate that chains to the CA, on both
/// sides (CAF sets SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT once a CA
/// is configured), and failed handshakes are reported (net/tls_watch.hpp).
void configure_actor_system(caf::actor_system_config& cfg,
                            std::chrono::milliseconds peer_timeout
                            = std::chrono::milliseconds{0},
                            const tls_files* tls = nullptr);

/// The middleman actor that opens, accepts and spawns over node links: CAF's
/// OpenSSL one when the system has TLS files, else the plain one. Both answer
/// the same messages (connect, publish, open, spawn).
caf::io::middleman_actor link_manager(caf::actor_system& sys);

/// Publishes `whom` on `host`:`port` (0: any free port) over TLS when the
/// system has TLS files, else in plaintext; returns the bound port.
template <class Handle>
caf::expected<uint16_t>
publish_link(const Handle& whom, uint16_t port, const char* host) {
  auto& sys = whom.home_system();
  if (sys.has_openssl_manager())
    return caf::openssl::publish(whom, port, host);
  return sys.middleman().publish(whom, port, host);
}

/// Connects to the actor published at `host`:`port`, over TLS when the system
/// has TLS files; the handle type must match the published one exactly.
template <class Handle>
caf::expected<Handle>
remote_link(caf::actor_system& sys, std::string host, uint16_t port) {
  if (sys.has_openssl_manager())
    return caf::openssl::remote_actor<Handle>(sys, std::move(host), port);
  return sys.middleman().remote_actor<Handle>(std::move(host), port);
}

/// Opens `host`:`port` (0: any free port) for node links without publishing
/// an actor (a bare worker serves routers' remote spawns there), over TLS
/// when the system has TLS files; returns the bound port.
caf::expected<uint16_t> open_link_port(caf::actor_system& sys, uint16_t port,
                                       const char* host);

} // namespace volt
