#pragma once

#include <cstddef>

#include "actors/engine.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"
#include "model/checkpoint.hpp"

namespace volt {

/// How a standalone node lays out its actors.
struct standalone_options {
  engine_options engine;
  /// Expert actors to split the experts over (contiguous slices); 0 picks one
  /// per hardware thread, at most one per expert. More actors let several
  /// experts compute in parallel.
  size_t expert_actors = 0;
};

/// Loads the model from `ckpt` and spawns every actor of a node in this
/// process: gating, expert actors hosting all experts, and the engine. Errors
/// name the file or tensor at fault.
caf::expected<engine_actor> spawn_standalone(caf::actor_system& sys,
                                             const checkpoint& ckpt,
                                             const standalone_options& options);

} // namespace volt
