#include "model/routing_mask.hpp"

#include <algorithm>
#include <string>

#include "base/error.hpp"

namespace volt {

caf::expected<std::vector<uint8_t>>
available_experts(const std::vector<uint32_t>& masked, int64_t n_experts) {
  std::vector<uint8_t> flags;
  if (masked.empty())
    return flags;
  flags.assign(static_cast<size_t>(n_experts), 1);
  for (auto e : masked) {
    if (e >= n_experts)
      return make_volt_error(volt_errc::invalid_request,
                             "masked experts: expert " + std::to_string(e)
                               + " is outside the model ("
                               + std::to_string(n_experts) + " experts)");
    flags[e] = 0;
  }
  if (std::none_of(flags.begin(), flags.end(), [](uint8_t f) { return f; }))
    return make_volt_error(volt_errc::invalid_request,
                           "masked experts: all " + std::to_string(n_experts)
                             + " experts are masked; at least one must stay "
                               "to route to");
  return flags;
}

caf::error check_replayed_routing(const std::vector<int32_t>& routing,
                                  int64_t n_layers, int64_t n, int64_t k,
                                  int64_t n_experts) {
  if (routing.empty())
    return {};
  const auto want = n_layers * n * k;
  if (static_cast<int64_t>(routing.size()) != want)
    return make_volt_error(volt_errc::invalid_request,
                           "replayed routing: " + std::to_string(routing.size())
                             + " expert ids, the step needs "
                             + std::to_string(want) + " (layers x rows x top-k)");
  for (size_t i = 0; i < routing.size(); ++i)
    if (routing[i] < 0 || routing[i] >= n_experts)
      return make_volt_error(volt_errc::invalid_request,
                             "replayed routing: id " + std::to_string(i)
                               + " is expert " + std::to_string(routing[i])
                               + ", outside the model ("
                               + std::to_string(n_experts) + " experts)");
  return {};
}

} // namespace volt
