#pragma once

#include <chrono>

#include "caf/actor_system_config.hpp"

namespace volt {

/// Applies Volt's CAF settings: our type-ID block, the middleman (BASP over
/// TCP) and the scheduler. On the few cores of our nodes, CAF's `sharing`
/// policy and an in-loop middleman (`middleman.workers = 0`) cut a 4 KiB round
/// trip from ~210 µs to ~70 µs (DESIGN.md §4), and one scheduler worker per
/// core (at least two; CAF's default is at least four) keeps woken actors
/// from waiting behind a running one. Blocking work runs in detached actors.
/// With a `peer_timeout`, BASP heartbeats go out every quarter of it (at least
/// every 250 ms) and a peer silent for that long (a frozen process) is
/// disconnected, so that monitors fire; CAF leaves both off by default.
void configure_actor_system(caf::actor_system_config& cfg,
                            std::chrono::milliseconds peer_timeout
                            = std::chrono::milliseconds{0});

} // namespace volt
