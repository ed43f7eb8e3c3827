#include "actors/degraded_routing.hpp"

#include <algorithm>
#include <iterator>

#include "actors/expert_pool.hpp"
#include "base/log.hpp"

namespace volt {

degraded_routing::degraded_routing(missing_expert_policy policy,
                                   std::vector<uint32_t> masked,
                                   uint32_t n_experts,
                                   std::chrono::milliseconds grace)
  : policy_(policy), masked_(std::move(masked)), n_experts_(n_experts),
    grace_end_(clock::now() + grace) {
  std::sort(masked_.begin(), masked_.end());
  masked_.erase(std::unique(masked_.begin(), masked_.end()), masked_.end());
}

std::vector<uint32_t>
degraded_routing::step_mask(const std::vector<uint32_t>& missing) const {
  if (!renormalizes())
    return masked_;
  std::vector<uint32_t> out;
  std::set_union(masked_.begin(), masked_.end(), missing.begin(), missing.end(),
                 std::back_inserter(out));
  return out;
}

bool degraded_routing::can_serve(const std::vector<uint32_t>& missing) {
  if (missing.empty()) {
    every_expert_seen_ = true;
    return true;
  }
  // At the start, hosts join one by one within moments: serving degraded
  // answers then would be a surprise, not a failure handled.
  return renormalizes() && step_mask(missing).size() < n_experts_
         && (every_expert_seen_ || clock::now() >= grace_end_);
}

bool degraded_routing::in_grace() const {
  return renormalizes() && !every_expert_seen_ && clock::now() < grace_end_;
}

void degraded_routing::note(const std::vector<uint32_t>& mask,
                            const std::vector<uint32_t>& missing) {
  if (mask == logged_)
    return;
  if (mask.empty())
    VOLT_INFO("engine", "full routing resumed: every expert has a live host");
  else if (missing.empty())
    VOLT_INFO("engine",
              "routing without masked experts " << expert_pool::render(mask));
  else
    VOLT_WARN("engine", "degraded routing: experts "
                          << expert_pool::render(mask)
                          << " are left out (no live host); their tokens keep "
                             "their other chosen experts, weights "
                             "renormalised");
  logged_ = mask;
}

} // namespace volt
