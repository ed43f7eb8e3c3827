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
    used_(owner_.size(), 0), pinned_(owner_.size(), false),
    follows_(slot_.size() * static_cast<size_t>(n_experts), 0.0f),
    followed_(slot_.size(), 0.0f),
    last_(static_cast<size_t>(n_layers)) {}

void expert_slot_cache::observe(int64_t layer,
                                const std::vector<uint32_t>& used) {
  learning_ = true;
  auto& last = last_[static_cast<size_t>(layer)];
  for (auto a : last) {
    auto from = index(layer, a);
    followed_[from] += 1.0f;
    for (auto b : used)
      follows_[from * static_cast<size_t>(n_experts_) + b] += 1.0f;
  }
  last = used;
}

float expert_slot_cache::learned_chance(int64_t layer, uint32_t expert) const {
  // Each of the last experts votes with how often `expert` followed it,
  // pulled towards the layer's mean share (a step of one row uses about
  // top-k of n_experts; the share is not known here, so 1 / n_experts) by
  // one pseudo-observation; the chance that at least one vote comes true.
  const auto& last = last_[static_cast<size_t>(layer)];
  if (last.empty())
    return 0.0f;
  const float prior = 1.0f / static_cast<float>(n_experts_);
  float none = 1.0f;
  for (auto a : last) {
    auto from = index(layer, a);
    auto p = (follows_[from * static_cast<size_t>(n_experts_) + expert] + prior)
             / (followed_[from] + 1.0f);
    none *= 1.0f - p;
  }
  return 1.0f - none;
}

float expert_slot_cache::chance_of(size_t key) const {
  if (!learning_)
    return chance_[key];
  auto layer = static_cast<int64_t>(key) / n_experts_;
  auto expert = static_cast<uint32_t>(static_cast<int64_t>(key) % n_experts_);
  return std::max(chance_[key], learned_chance(layer, expert));
}

caf::expected<expert_slot_cache::placement>
expert_slot_cache::admit(int64_t layer, const std::vector<uint32_t>& needed,
                         bool bus_busy) {
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
  if (host_allowed()) {
    std::vector<uint32_t> misses;
    for (auto e : needed)
      if (out.slot_of[e] < 0)
        misses.push_back(e);
    place_misses(layer, misses, bus_busy, out);
    return out;
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

void expert_slot_cache::allow_host(double copy_seconds, double host_seconds,
                                   bool always) {
  copy_seconds_ = copy_seconds;
  host_seconds_ = host_seconds;
  host_always_ = always;
}

void expert_slot_cache::place_misses(int64_t layer,
                                const std::vector<uint32_t>& misses,
                                bool bus_busy, placement& out) {
  // Likeliest first: they have the first claim on slots.
  std::vector<uint32_t> order = misses;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return chance_of(index(layer, a)) > chance_of(index(layer, b));
  });
  std::vector<load> kept; // worth a slot, in order
  std::vector<int32_t> taken; // slots given to them
  std::vector<uint32_t> turned_away; // likeliest first
  auto keep = [&](uint32_t e, int32_t s) {
    place(s, index(layer, e));
    taken.push_back(s);
    kept.push_back(load{s, layer, e});
  };
  for (auto e : order) {
    auto key = index(layer, e);
    auto s = victim(-1.0f, taken);
    // Kept when a slot is free, or, while the bus is idle, (with chances
    // learned) when it is likelier than the expert it would evict; plain
    // LRU keeps every miss then.
    if (s >= 0
        && (owner_[static_cast<size_t>(s)] < 0
            || (!bus_busy
                && (!learning_
                    || chance_of(key)
                         > chance_of(static_cast<size_t>(
                           owner_[static_cast<size_t>(s)]))))))
      keep(e, s);
    else
      turned_away.push_back(e);
  }
  // A host slower than the bus would make the layer wait longer for the
  // turned-away experts than copying one more would take: copy (and keep)
  // the likeliest of them instead, while that is so.
  size_t first_host = 0;
  while (!host_always_ && first_host < turned_away.size()
         && static_cast<double>(turned_away.size() - first_host)
                * host_seconds_
              > static_cast<double>(kept.size() + 1) * copy_seconds_) {
    auto s = victim(-1.0f, taken);
    if (s < 0)
      break;
    keep(turned_away[first_host++], s);
  }
  out.on_host.assign(
    turned_away.begin() + static_cast<std::ptrdiff_t>(first_host),
    turned_away.end());
  // Wait for the first j copies, the host computes the rest: the j that
  // makes the layer's wait shortest (the fewest on ties); none when the
  // host takes every miss.
  const auto rejected = static_cast<double>(out.on_host.size());
  size_t best_j = 0;
  double best_wait = 0;
  for (size_t j = 0; j <= (host_always_ ? 0 : kept.size()); ++j) {
    double wait = std::max(
      static_cast<double>(j) * copy_seconds_,
      (static_cast<double>(kept.size() - j) + rejected) * host_seconds_);
    if (j == 0 || wait < best_wait) {
      best_wait = wait;
      best_j = j;
    }
  }
  for (size_t i = 0; i < kept.size(); ++i) {
    const auto& ld = kept[i];
    if (i < best_j) {
      pinned_[static_cast<size_t>(ld.slot)] = true;
      out.slot_of[ld.expert] = ld.slot;
      out.loads.push_back(ld);
    } else {
      out.on_host.push_back(ld.expert);
      out.admissions.push_back(ld);
    }
  }
  std::sort(out.on_host.begin(), out.on_host.end());
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
    auto s = victim(chance_of(key), staged);
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

void expert_slot_cache::set_ranked(int64_t layer,
                                   const std::vector<uint32_t>& best_first) {
  std::vector<float> chance(static_cast<size_t>(n_experts_), 0.0f);
  const auto n = static_cast<float>(best_first.size());
  for (size_t i = 0; i < best_first.size(); ++i)
    if (best_first[i] < chance.size())
      chance[best_first[i]] = (n - static_cast<float>(i)) / n;
  set_chances(layer, chance);
}

void expert_slot_cache::release_all() {
  std::fill(pinned_.begin(), pinned_.end(), false);
}

int32_t expert_slot_cache::victim(float below,
                                  const std::vector<int32_t>& keep) const {
  int32_t best = -1;
  float best_chance = 0.0f;
  for (size_t s = 0; s < owner_.size(); ++s) {
    if (pinned_[s]
        || std::find(keep.begin(), keep.end(), static_cast<int32_t>(s))
             != keep.end())
      continue;
    if (owner_[s] < 0)
      return static_cast<int32_t>(s);
    auto c = chance_of(static_cast<size_t>(owner_[s]));
    if (below >= 0 && c >= below)
      continue;
    if (best < 0 || c < best_chance
        || (c == best_chance && used_[s] < used_[static_cast<size_t>(best)])) {
      best = static_cast<int32_t>(s);
      best_chance = c;
    }
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
