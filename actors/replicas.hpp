#pragma once

// Spawning expert actors on other nodes and retiring them from an engine:
// the steps that [router] placement (discovery), the autoscaler and an
// operator's tools share.

#include <chrono>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "actors/type_ids.hpp"
#include "base/error.hpp"
#include "caf/actor_system.hpp"
#include "caf/io/middleman.hpp"
#include "caf/io/middleman_actor.hpp"
#include "config/endpoint.hpp"
#include "net/actor_system_setup.hpp"

namespace volt {

/// Name under which worker nodes register the expert actor for remote spawns.
inline const std::string expert_actor_type = "volt.expert";

/// Asks `handle` for its hello, as the engine needs before it uses a host:
/// a spawn that failed on its node answers with why, and a host on another
/// checkpoint than `checkpoint` (the fingerprint) is refused and stopped.
/// Calls `on_host(handle, experts)` or `on_error(error)`.
template <class Self, class OnHost, class OnError>
void confirm_expert_host(Self* self, expert_actor handle,
                         std::string checkpoint,
                         std::chrono::milliseconds timeout, OnHost on_host,
                         OnError on_error) {
  self->request(handle, timeout, hosted_atom_v)
    .then(
      [=](expert_hello& hello) {
        if (hello.checkpoint != checkpoint) {
          self->send_exit(handle, caf::exit_reason::user_shutdown);
          return on_error(make_volt_error(
            volt_errc::invalid_config,
            "refused: its checkpoint fingerprint "
              + (hello.checkpoint.empty() ? std::string{"(none)"}
                                          : hello.checkpoint)
              + " differs from this node's " + checkpoint));
        }
        on_host(handle, std::move(hello.experts));
      },
      [=](caf::error& err) { on_error(err); });
}

/// Connects to the node at `where` (over TLS when this process has its
/// files), spawns an expert actor hosting `experts` there (CAF remote_spawn
/// of `expert_actor_type`; the node loads them from its own checkpoint and
/// refuses when its fingerprint is not `checkpoint`) and confirms it with
/// confirm_expert_host. Each of the three steps is bounded by `timeout`.
/// Calls `on_host(handle, experts)` or `on_error(error)`, never both.
template <class Self, class OnHost, class OnError>
void spawn_remote_experts(Self* self, const endpoint& where,
                          std::vector<uint32_t> experts, std::string checkpoint,
                          std::chrono::milliseconds timeout, OnHost on_host,
                          OnError on_error) {
  auto mm = link_manager(self->system());
  auto ifs = self->system().template message_types<expert_actor>();
  self->request(mm, timeout, caf::connect_atom_v, where.host, where.port)
    .then(
      [=](const caf::node_id& nid, caf::strong_actor_ptr&,
          const std::set<std::string>&) {
        self
          ->request(mm, timeout, caf::spawn_atom_v, nid, expert_actor_type,
                    caf::make_message(experts, checkpoint), ifs)
          .then(
            [=](caf::strong_actor_ptr& spawned) {
              if (!spawned)
                return on_error(make_volt_error(volt_errc::internal,
                                                "remote spawn returned "
                                                "nothing"));
              confirm_expert_host(
                self, caf::actor_cast<expert_actor>(std::move(spawned)),
                checkpoint, timeout, on_host, on_error);
            },
            [=](caf::error& err) { on_error(err); });
      },
      [=](caf::error& err) { on_error(err); });
}

/// Retires the expert host `handle` from `engine` and stops it: the engine
/// stops picking it, waits for its rows in flight, forgets it and answers;
/// only then does the actor get an exit, so no request fails or changes its
/// answer. Calls `done(true)` once it is stopped, `done(false)` when the
/// engine did not use it (it is stopped all the same), or `done(error)`
/// when the engine refused (the last live host of an expert: it keeps
/// serving) or did not answer within `timeout`.
template <class Self, class Done>
void retire_expert_host(Self* self, const engine_actor& engine,
                        expert_actor handle, std::chrono::milliseconds timeout,
                        Done done) {
  self->request(engine, timeout, retire_atom_v, handle)
    .then(
      [=](bool was_host) {
        self->send_exit(handle, caf::exit_reason::user_shutdown);
        done(caf::expected<bool>{was_host});
      },
      [=](caf::error& err) { done(caf::expected<bool>{std::move(err)}); });
}

} // namespace volt
