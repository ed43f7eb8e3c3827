#pragma once

// A CAF test coordinator fixture (deterministic scheduler) for Volt's message
// types, with a helper that asks an actor and returns its answer.

#include "actors/type_ids.hpp"
#include "tests/test_dsl.hpp"

namespace volt::test {

/// An actor system config that knows Volt's type-ID block.
struct volt_types_config : caf::actor_system_config {
  volt_types_config() {
    add_message_types<caf::id_block::volt>();
  }
};

/// The deterministic fixture plus `ask`.
struct deterministic_fixture : test_coordinator_fixture<volt_types_config> {
  /// Sends `xs` to `dest` as a request, runs the scheduler, returns the answer.
  template <class T, class Handle, class... Ts>
  caf::expected<T> ask(const Handle& dest, Ts&&... xs) {
    caf::expected<T> result{caf::error{}};
    auto rh = self->request(dest, caf::infinite, std::forward<Ts>(xs)...);
    run();
    rh.receive([&](T& x) { result = std::move(x); },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  }
};

} // namespace volt::test
