#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "config/node_config.hpp"

namespace volt {

/// The engine's policy for experts without a live host ([router]
/// on_missing_expert): whether requests run while some are missing, which
/// experts each step leaves out of routing, and the log line when that set
/// changes. Experts masked on purpose (a reference run of `generate
/// --mask-experts`) are left out of every step, whatever the policy.
class degraded_routing {
public:
  using clock = std::chrono::steady_clock;

  degraded_routing() = default;

  /// `grace`: how long after the start a renormalising engine waits for
  /// every expert to have a host before it serves without some (once every
  /// expert had one, it degrades at once).
  degraded_routing(missing_expert_policy policy, std::vector<uint32_t> masked,
                   uint32_t n_experts, std::chrono::milliseconds grace);

  bool renormalizes() const {
    return policy_ == missing_expert_policy::renormalize;
  }

  /// Experts a step runs without when `missing` (ascending) have no live
  /// host: the masked ones, and with renormalize the missing ones too;
  /// ascending.
  std::vector<uint32_t> step_mask(const std::vector<uint32_t>& missing) const;

  /// Whether requests may run now while `missing` (ascending) have no live
  /// host: none missing; or renormalize, at least one expert left, and the
  /// start's grace over or every expert seen with a host before.
  bool can_serve(const std::vector<uint32_t>& missing);

  /// Whether the engine should keep its timer running for the grace to end.
  bool in_grace() const;

  /// Logs once per change of the set of experts a step runs without:
  /// `mask` as step_mask gave it for `missing`.
  void note(const std::vector<uint32_t>& mask,
            const std::vector<uint32_t>& missing);

private:
  missing_expert_policy policy_ = missing_expert_policy::fail;
  std::vector<uint32_t> masked_;
  uint32_t n_experts_ = 0;
  clock::time_point grace_end_;
  bool every_expert_seen_ = false;
  std::vector<uint32_t> logged_;
};

} // namespace volt
