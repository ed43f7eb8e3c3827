#include "model/expert_slot_cache.hpp"

#include <algorithm>

#include "base/error.hpp"

namespace volt {

caf::expected<expert_slot_cache>
expert_slot_cache::make(int64_t slots, int64_t n_layers, int64_t n_experts,
                        int64_t max_needed, const std::string& origin) {
  auto total = n_layers * n_experts;
  if (slots < max_needed)
    return make_volt_error(
      volt_errc::invalid_config,
      origin + " " + std::to_string(slots) + ": a step can need "
        + std::to_string(max_needed)
        + " experts of one layer at once (the layer's experts, or the step's "
          "rows times top-k if fewer); set at least that, or 0 to keep every "
          "expert resident");
  if (slots > total)
    return make_volt_error(volt_errc::invalid_config,
                           origin + " " + std::to_string(slots)
                             + ": the model has only " + std::to_string(total)
                             + " experts (" + std::to_string(n_layers)
                             + " layers of " + std::to_string(n_experts)
                             + "); 0 keeps every expert resident");
  return expert_slot_cache{slots, n_layers, n_experts, max_needed};
}

expert_slot_cache::expert_slot_cache(int64_t slots, int64_t n_layers,
                                     int64_t n_experts, int64_t max_needed)
  : n_experts_(n_experts), max_needed_(max_needed),
    slot_(static_cast<size_t>(n_layers * n_experts), -1),
    chance_(slot_.size(), 0.0f), owner_(static_cast<size_t>(slots), -1),
    used_(owner_.size(), 0), pinned_(owner_.size(), false) {}

caf::expected<expert_slot_cache::placement>
expert_slot_cache::admit(int64_t layer, const std::vector<uint32_t>& needed) {
  if (static_cast<int64_t>(needed.size()) > max_needed_)
    return make_volt_error(volt_errc::internal,
                           "expert cache: layer " + std::to_string(layer)
                             + " needs " + std::to_string(needed.size())
                             + " experts at once, sized for "
                             + std::to_string(max_needed_));
  release_all();
  placement out;
  out.slot_of.assign(static_cast<size_t>(n_experts_), -1);
  ++clock_;
  // Resident ones first, so that no miss evicts an expert this layer needs.
  for (auto e : needed) {
    auto s = slot_[index(layer, e)];
    if (s < 0)
      continue;
    pinned_[static_cast<size_t>(s)] = true;
    used_[static_cast<size_t>(s)] = clock_;
    out.slot_of[e] = s;
    ++out.hits;
  }
  for (auto e : needed) {
    if (out.slot_of[e] >= 0)
      continue;
    auto s = victim(-1.0f, {});
    if (s < 0) // cannot happen: at most max_needed_ <= slots are pinned
      return make_volt_error(volt_errc::internal,
                             "expert cache: no slot left for layer "
                               + std::to_string(layer) + " expert "
                               + std::to_string(e));
    place(s, index(layer, e));
    pinned_[static_cast<size_t>(s)] = true;
    out.slot_of[e] = s;
    out.loads.push_back(load{s, layer, e});
  }
  return out;
}

std::vector<expert_slot_cache::load>
expert_slot_cache::stage(int64_t layer, const std::vector<uint32_t>& wanted) {
  std::vector<load> out;
  std::vector<int32_t> staged; // slots this call keeps
  ++clock_;
  for (auto e : wanted) {
    auto key = index(layer, e);
    if (slot_[key] >= 0) {
      used_[static_cast<size_t>(slot_[key])] = clock_;
      staged.push_back(slot_[key]);
      continue;
    }
    auto s = victim(chance_[key], staged);
    if (s < 0)
      break; // wanted is best first: the rest would not win a slot either
    place(s, key);
    staged.push_back(s);
    out.push_back(load{s, layer, e});
  }
  return out;
}

void expert_slot_cache::set_chances(int64_t layer,
                                    const std::vector<float>& chances) {
  auto n = std::min<size_t>(chances.size(), static_cast<size_t>(n_experts_));
  std::copy_n(chances.begin(), n,
              chance_.begin() + static_cast<std::ptrdiff_t>(index(layer, 0)));
}

void expert_slot_cache::release_all() {
  std::fill(pinned_.begin(), pinned_.end(), false);
}

int32_t expert_slot_cache::victim(float below,
                                  const std::vector<int32_t>& keep) const {
  int32_t best = -1;
  for (size_t s = 0; s < owner_.size(); ++s) {
    if (pinned_[s]
        || std::find(keep.begin(), keep.end(), static_cast<int32_t>(s))
             != keep.end())
      continue;
    if (owner_[s] < 0)
      return static_cast<int32_t>(s);
    auto c = chance_[static_cast<size_t>(owner_[s])];
    if (below >= 0 && c >= below)
      continue;
    if (best < 0) {
      best = static_cast<int32_t>(s);
      continue;
    }
    auto b = chance_[static_cast<size_t>(owner_[static_cast<size_t>(best)])];
    if (c < b || (c == b && used_[s] < used_[static_cast<size_t>(best)]))
      best = static_cast<int32_t>(s);
  }
  return best;
}

void expert_slot_cache::place(int32_t slot, size_t key) {
  auto s = static_cast<size_t>(slot);
  if (owner_[s] >= 0)
    slot_[static_cast<size_t>(owner_[s])] = -1;
  owner_[s] = static_cast<int64_t>(key);
  slot_[key] = slot;
  used_[s] = clock_;
}

} // namespace volt
