#define CAF_SUITE model.expert_slot_cache

// The expert cache's policy: which (layer, expert) occupies which GPU slot.
// A layer's needed experts are never evicted while it runs, eviction follows
// the predictor's chances and then recency, staging never displaces a more
// likely expert, a cache that observes routing learns which experts follow
// which (and so stops cycling where LRU misses every time), and slot budgets
// that cannot work are refused at start.

#include "model/expert_slot_cache.hpp"

#include <algorithm>
#include <random>
#include <set>

#include "base/error.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

expert_slot_cache make_cache(int64_t slots, int64_t layers = 4,
                             int64_t experts = 8, int64_t max_needed = 2) {
  auto c = expert_slot_cache::make(slots, layers, experts, max_needed,
                                   "node.toml: [worker] gpu_expert_slots =");
  if (!c)
    CAF_FAIL("make: " << describe(c.error()));
  return std::move(*c);
}

std::vector<uint32_t> loaded(const expert_slot_cache::placement& p) {
  std::vector<uint32_t> out;
  for (auto& l : p.loads)
    out.push_back(l.expert);
  return out;
}

/// One to four distinct experts of eight, ascending.
std::vector<uint32_t> random_needs(std::mt19937& gen) {
  std::set<uint32_t> want;
  auto n = 1 + gen() % 4;
  while (want.size() < n)
    want.insert(gen() % 8);
  return {want.begin(), want.end()};
}

} // namespace

CAF_TEST(slot budgets that cannot work are refused with the key) {
  auto few = expert_slot_cache::make(
    3, 32, 8, 8, "node.toml: [worker] gpu_expert_slots =");
  CAF_REQUIRE(!few);
  CAF_CHECK_EQUAL(few.error().code(),
                  static_cast<uint8_t>(volt_errc::invalid_config));
  CAF_CHECK_EQUAL(describe(few.error()),
                  "node.toml: [worker] gpu_expert_slots = 3: a step can need 8 "
                  "experts of one layer at once (the layer's experts, or the "
                  "step's rows times top-k if fewer); set at least that, or 0 "
                  "to keep every expert resident");
  auto many = expert_slot_cache::make(
    300, 32, 8, 8, "node.toml: [worker] gpu_expert_slots =");
  CAF_REQUIRE(!many);
  CAF_CHECK_NOT_EQUAL(describe(many.error()).find("the model has only 256 "
                                                  "experts (32 layers of 8)"),
                      std::string::npos);
  CAF_CHECK(static_cast<bool>(expert_slot_cache::make(8, 32, 8, 8, "k =")));
}

CAF_TEST(first use misses and loads then hits) {
  auto c = make_cache(4);
  auto p = c.admit(0, {1, 5});
  CAF_REQUIRE(static_cast<bool>(p));
  CAF_CHECK_EQUAL(p->hits, 0);
  CAF_CHECK_EQUAL(loaded(*p), (std::vector<uint32_t>{1, 5}));
  CAF_CHECK_NOT_EQUAL(p->slot_of[1], p->slot_of[5]);
  CAF_CHECK_EQUAL(p->slot_of[0], -1);
  for (auto& l : p->loads)
    CAF_CHECK_EQUAL(l.layer, 0);
  auto again = c.admit(0, {5, 1});
  CAF_REQUIRE(static_cast<bool>(again));
  CAF_CHECK_EQUAL(again->hits, 2);
  CAF_CHECK(again->loads.empty());
  CAF_CHECK_EQUAL(again->slot_of[1], p->slot_of[1]);
  CAF_CHECK_EQUAL(again->slot_of[5], p->slot_of[5]);
}

CAF_TEST(the least recently used expert goes first when chances are equal) {
  auto c = make_cache(4);
  CAF_REQUIRE(static_cast<bool>(c.admit(0, {0, 1}))); // slots: (0,0) (0,1)
  CAF_REQUIRE(static_cast<bool>(c.admit(1, {0, 1}))); // + (1,0) (1,1): full
  CAF_REQUIRE(static_cast<bool>(c.admit(0, {0}))); // (0,0) used again
  auto p = c.admit(2, {3});
  CAF_REQUIRE(static_cast<bool>(p));
  CAF_CHECK(!c.resident(0, 1)); // the oldest
  CAF_CHECK(c.resident(0, 0));
  CAF_CHECK(c.resident(1, 0));
  CAF_CHECK(c.resident(1, 1));
  CAF_CHECK(c.resident(2, 3));
}

CAF_TEST(an expert the layer needs is never evicted for another it needs) {
  // Random layers and needs, two slots more than one layer's needs: after
  // every admit, every needed expert has its own slot and is resident.
  auto c = make_cache(6, 8, 8, 4);
  std::mt19937 gen{7};
  for (int i = 0; i < 2000; ++i) {
    auto layer = static_cast<int64_t>(gen() % 8);
    auto needed = random_needs(gen);
    auto p = c.admit(layer, needed);
    CAF_REQUIRE(static_cast<bool>(p));
    std::set<int32_t> slots;
    for (auto e : needed) {
      CAF_REQUIRE(c.resident(layer, e));
      CAF_REQUIRE_GREATER_OR_EQUAL(p->slot_of[e], 0);
      CAF_REQUIRE_LESS(p->slot_of[e], 6);
      slots.insert(p->slot_of[e]);
    }
    CAF_REQUIRE_EQUAL(slots.size(), needed.size());
    CAF_REQUIRE_EQUAL(static_cast<size_t>(p->hits) + p->loads.size(),
                      needed.size());
    // Staging for the next layer never takes a slot the admit pinned.
    auto next = (layer + 1) % 8;
    c.set_chances(next, std::vector<float>(8, 1.0f));
    for (auto& l : c.stage(next, {0, 1, 2, 3, 4, 5, 6, 7}))
      CAF_REQUIRE_EQUAL(slots.count(l.slot), 0u);
    for (auto e : needed)
      CAF_REQUIRE(c.resident(layer, e));
    c.set_chances(next, std::vector<float>(8, 0.0f));
  }
}

CAF_TEST(more needed at once than the cache was sized for is an error) {
  auto c = make_cache(4, 4, 8, 2);
  auto p = c.admit(0, {0, 1, 2});
  CAF_REQUIRE(!p);
  CAF_CHECK_EQUAL(p.error().code(), static_cast<uint8_t>(volt_errc::internal));
}

CAF_TEST(eviction follows the predictor before recency) {
  auto c = make_cache(4);
  c.set_chances(0, {0.9f, 0.1f, 0, 0, 0, 0, 0, 0});
  CAF_REQUIRE(static_cast<bool>(c.admit(0, {0, 1})));
  CAF_REQUIRE(static_cast<bool>(c.admit(1, {0, 1}))); // chance 0, more recent
  c.set_chances(1, {0.5f, 0.5f, 0, 0, 0, 0, 0, 0});
  // Full: the victim is layer 0's expert 1 (chance 0.1), not the older
  // expert 0 of layer 0 (0.9) nor layer 1's (0.5).
  auto p = c.admit(2, {4});
  CAF_REQUIRE(static_cast<bool>(p));
  CAF_CHECK(!c.resident(0, 1));
  CAF_CHECK(c.resident(0, 0));
  CAF_CHECK(c.resident(1, 0) && c.resident(1, 1));
}

CAF_TEST(staging fills free slots and displaces only less likely experts) {
  auto c = make_cache(4);
  c.set_chances(0, {0.8f, 0.8f, 0, 0, 0, 0, 0, 0});
  CAF_REQUIRE(static_cast<bool>(c.admit(0, {0, 1})));
  c.set_chances(1, {0, 0, 0.9f, 0.05f, 0.5f, 0, 0, 0});
  // Two free slots take experts 2 and 4; 3 (chance 0.05) finds no expert
  // less likely than itself to replace.
  auto loads = c.stage(1, {2, 4, 3});
  CAF_REQUIRE_EQUAL(loads.size(), 2u);
  CAF_CHECK_EQUAL(loads[0].expert, 2u);
  CAF_CHECK_EQUAL(loads[1].expert, 4u);
  CAF_CHECK(c.resident(1, 2) && c.resident(1, 4) && !c.resident(1, 3));
  CAF_CHECK(c.resident(0, 0) && c.resident(0, 1));
  // Staged experts are hits when the layer runs.
  auto p = c.admit(1, {2, 4});
  CAF_REQUIRE(static_cast<bool>(p));
  CAF_CHECK_EQUAL(p->hits, 2);
  CAF_CHECK(p->loads.empty());
  // Once layer 0's experts become unlikely, a likely one displaces them.
  c.set_chances(0, std::vector<float>(8, 0.0f));
  c.set_chances(2, {0, 0, 0, 0, 0, 0, 0, 0.7f});
  auto more = c.stage(2, {7});
  CAF_REQUIRE_EQUAL(more.size(), 1u);
  CAF_CHECK(c.resident(2, 7));
  CAF_CHECK(!(c.resident(0, 0) && c.resident(0, 1)));
  // Pinned by the admit of layer 1: never displaced by staging.
  CAF_CHECK(c.resident(1, 2) && c.resident(1, 4));
}

CAF_TEST(a ranked prediction gives chances falling with the rank) {
  auto c = make_cache(4);
  CAF_REQUIRE(static_cast<bool>(c.admit(0, {5, 6})));
  // Best first: 3 (chance 1), 1 (2/3), 7 (1/3); the others 0.
  c.set_ranked(1, {3, 1, 7});
  // Two free slots take 3 and 1; 7 replaces neither layer 0's pinned
  // experts nor the more likely ones just staged.
  auto loads = c.stage(1, {3, 1, 7});
  CAF_REQUIRE_EQUAL(loads.size(), 2u);
  CAF_CHECK(c.resident(1, 3) && c.resident(1, 1) && !c.resident(1, 7));
  // Once layer 1 runs 3 and 1, staging 7 for layer 2 finds only layer 0's
  // experts (chance 0) to replace, and layer 2's ranking makes 7 likelier.
  CAF_REQUIRE(static_cast<bool>(c.admit(1, {1, 3})));
  c.set_ranked(2, {7});
  CAF_CHECK_EQUAL(c.stage(2, {7}).size(), 1u);
  CAF_CHECK(c.resident(2, 7) && c.resident(1, 1) && c.resident(1, 3));
  // An id outside the layer is ignored.
  c.set_ranked(3, {42, 0});
  CAF_CHECK_EQUAL(c.stage(3, {0}).size(), 1u);
}

CAF_TEST(a cache that observes routing learns what follows and beats LRU) {
  // One layer of three experts, two slots, steps cycling 0, 1, 2, 0, ...:
  // LRU always evicts the expert needed next. A cache that has seen the
  // cycle keeps the next one: every second step hits (Belady's optimum).
  auto run = [](bool observe) {
    auto c = make_cache(2, 1, 3, 1);
    int64_t hits = 0;
    for (int step = 0; step < 60; ++step) {
      std::vector<uint32_t> needed{static_cast<uint32_t>(step % 3)};
      if (observe)
        c.observe(0, needed);
      auto p = c.admit(0, needed);
      CAF_REQUIRE(p);
      if (step >= 30)
        hits += p->hits;
    }
    return hits;
  };
  CAF_CHECK_EQUAL(run(false), 0);
  CAF_CHECK_EQUAL(run(true), 15);
}

CAF_TEST(the learned chance follows the observed transitions) {
  auto c = make_cache(4, 2, 4, 2);
  CAF_CHECK_EQUAL(c.learned_chance(0, 1), 0.0f);
  // Layer 0: {0} is always followed by {1, 2}, and {1, 2} by {0}.
  for (int i = 0; i < 20; ++i) {
    c.observe(0, {0});
    c.observe(0, {1, 2});
  }
  // The last step used {1, 2}: 0 comes next, 3 never has.
  CAF_CHECK_GREATER(c.learned_chance(0, 0), 0.9f);
  CAF_CHECK_LESS(c.learned_chance(0, 3), 0.05f);
  c.observe(0, {0});
  CAF_CHECK_GREATER(c.learned_chance(0, 1), 0.9f);
  CAF_CHECK_GREATER(c.learned_chance(0, 2), 0.9f);
  CAF_CHECK_LESS(c.learned_chance(0, 0), 0.05f);
  // Layer 1 has learned nothing.
  CAF_CHECK_EQUAL(c.learned_chance(1, 0), 0.0f);
}

CAF_TEST(with the host allowed one miss runs there while its copy goes on) {
  // A copy costs 6.4 ms, the host 4.5 ms: one miss is computed on the host
  // (the layer waits 4.5 ms, not 6.4) and copied in the background, so the
  // next step finds it resident.
  auto c = make_cache(4);
  c.allow_host(6.4e-3, 4.5e-3);
  CAF_CHECK(c.host_allowed());
  auto p = c.admit(0, {3});
  CAF_REQUIRE(p);
  CAF_CHECK(p->loads.empty());
  CAF_CHECK_EQUAL(p->on_host, (std::vector<uint32_t>{3}));
  CAF_REQUIRE_EQUAL(p->admissions.size(), 1u);
  CAF_CHECK_EQUAL(p->admissions[0].expert, 3u);
  CAF_CHECK_EQUAL(p->slot_of[3], -1);
  CAF_CHECK(c.resident(0, 3));
  auto again = c.admit(0, {3});
  CAF_REQUIRE(again);
  CAF_CHECK_EQUAL(again->hits, 1);
  CAF_CHECK(again->on_host.empty());
  CAF_CHECK_EQUAL(again->slot_of[3], p->admissions[0].slot);
}

CAF_TEST(with two misses the layer waits for one copy and the host takes one) {
  // max(1 copy, 1 host) = 6.4 ms beats 2 copies (12.8) and 2 on the host (9).
  auto c = make_cache(4);
  c.allow_host(6.4e-3, 4.5e-3);
  auto p = c.admit(1, {2, 6});
  CAF_REQUIRE(p);
  CAF_CHECK_EQUAL(p->loads.size(), 1u);
  CAF_CHECK_EQUAL(p->on_host.size(), 1u);
  CAF_CHECK_EQUAL(p->admissions.size(), 1u);
  // The copied one has its slot now; the host's one is -1 until it lands.
  auto copied = p->loads[0].expert;
  auto hosted = p->on_host[0];
  CAF_CHECK_NOT_EQUAL(copied, hosted);
  CAF_CHECK_GREATER_OR_EQUAL(p->slot_of[copied], 0);
  CAF_CHECK_EQUAL(p->slot_of[hosted], -1);
  CAF_CHECK_NOT_EQUAL(p->admissions[0].slot, p->loads[0].slot);
  // A slow host (20 ms) makes copying both the shorter wait.
  auto slow = make_cache(4);
  slow.allow_host(6.4e-3, 20e-3);
  auto q = slow.admit(1, {2, 6});
  CAF_REQUIRE(q);
  CAF_CHECK_EQUAL(q->loads.size(), 2u);
  CAF_CHECK(q->on_host.empty());
}

namespace {

/// One layer of four experts, two slots, steps that use 0 and 1 by turns
/// and 2 or 3 once in a while, with the host taking `host_seconds` per
/// expert against 6.4 ms per copy. Over the last 100 steps: the misses
/// computed on the host, and the copies of the rare experts.
std::pair<int64_t, int64_t> rare_experts(double host_seconds) {
  auto c = make_cache(2, 1, 4, 1);
  c.allow_host(6.4e-3, host_seconds);
  int64_t host = 0;
  int64_t rare_copies = 0;
  for (int step = 0; step < 200; ++step) {
    uint32_t e = step % 10 == 9 ? 2 + (step / 10) % 2 : step % 2;
    c.observe(0, {e});
    auto p = c.admit(0, {e});
    CAF_REQUIRE(p);
    if (step < 100)
      continue;
    host += static_cast<int64_t>(p->on_host.size());
    for (const auto* copies : {&p->loads, &p->admissions})
      for (auto& ld : *copies)
        rare_copies += ld.expert >= 2 ? 1 : 0;
  }
  return {host, rare_copies};
}

} // namespace

CAF_TEST(a miss less likely than every resident expert runs on the host) {
  // The learned chances keep 0 and 1 resident and the rare ones run on the
  // host without evicting them (10 in 100 steps)...
  CAF_CHECK_EQUAL(rare_experts(4.5e-3),
                  std::make_pair(int64_t{10}, int64_t{0}));
  // ... unless the host is slower than a copy: then they are copied.
  CAF_CHECK_EQUAL(rare_experts(40e-3), std::make_pair(int64_t{0}, int64_t{10}));
}

CAF_TEST(a miss evicts nothing while the bus has copies queued) {
  // Two slots, both taken; the host a little faster than a copy.
  auto c = make_cache(2);
  c.allow_host(6.4e-3, 4.5e-3);
  for (uint32_t e : {0u, 1u}) {
    auto p = c.admit(0, {e}, true); // free slots are taken even when busy
    CAF_REQUIRE(p);
    CAF_CHECK_EQUAL(p->admissions.size(), 1u);
  }
  // Busy: expert 3 of layer 1 runs on the host and is not copied in.
  auto busy = c.admit(1, {3}, true);
  CAF_REQUIRE(busy);
  CAF_CHECK_EQUAL(busy->on_host, (std::vector<uint32_t>{3}));
  CAF_CHECK(busy->admissions.empty());
  CAF_CHECK(busy->loads.empty());
  CAF_CHECK(c.resident(0, 0));
  CAF_CHECK(c.resident(0, 1));
  CAF_CHECK(!c.resident(1, 3));
  // Idle: the same miss is copied in behind the host's work.
  auto idle = c.admit(1, {3}, false);
  CAF_REQUIRE(idle);
  CAF_CHECK_EQUAL(idle->on_host, (std::vector<uint32_t>{3}));
  CAF_CHECK_EQUAL(idle->admissions.size(), 1u);
  CAF_CHECK(c.resident(1, 3));
  // A host far slower than the bus still gets the copy the layer waits for.
  auto slow = make_cache(2);
  slow.allow_host(6.4e-3, 40e-3);
  for (uint32_t e : {0u, 1u})
    CAF_REQUIRE(slow.admit(0, {e}, true));
  auto waited = slow.admit(1, {3}, true);
  CAF_REQUIRE(waited);
  CAF_CHECK_EQUAL(loaded(*waited), (std::vector<uint32_t>{3}));
  CAF_CHECK(waited->on_host.empty());
}

CAF_TEST(with the host always on every miss runs there) {
  // Even where copies are faster: those worth keeping are copied in the
  // background, none is waited for.
  auto c = make_cache(4);
  c.allow_host(1e-3, 40e-3, true);
  auto p = c.admit(2, {0, 7});
  CAF_REQUIRE(p);
  CAF_CHECK(p->loads.empty());
  CAF_CHECK_EQUAL(p->on_host, (std::vector<uint32_t>{0, 7}));
  CAF_CHECK_EQUAL(p->admissions.size(), 2u);
  CAF_CHECK_EQUAL(p->slot_of[0], -1);
  CAF_CHECK_EQUAL(p->slot_of[7], -1);
  auto again = c.admit(2, {0, 7});
  CAF_REQUIRE(again);
  CAF_CHECK_EQUAL(again->hits, 2);
}

CAF_TEST(with the host allowed needed experts keep their slots) {
  // Random needs with the host allowed: every expert the layer computes on
  // the device has its own slot, every other one runs on the host, and the
  // two lists cover the needs exactly.
  auto c = make_cache(6, 8, 8, 4);
  c.allow_host(6.4e-3, 4.5e-3);
  std::mt19937 gen{11};
  for (int i = 0; i < 2000; ++i) {
    auto layer = static_cast<int64_t>(gen() % 8);
    auto needed = random_needs(gen);
    if (i % 2 == 0)
      c.observe(layer, needed);
    auto p = c.admit(layer, needed);
    CAF_REQUIRE(p);
    std::set<int32_t> slots;
    size_t on_device = 0;
    for (auto e : needed) {
      bool host = std::count(p->on_host.begin(), p->on_host.end(), e) == 1;
      if (host) {
        CAF_REQUIRE_EQUAL(p->slot_of[e], -1);
        continue;
      }
      ++on_device;
      CAF_REQUIRE(c.resident(layer, e));
      CAF_REQUIRE_GREATER_OR_EQUAL(p->slot_of[e], 0);
      slots.insert(p->slot_of[e]);
    }
    CAF_REQUIRE_EQUAL(slots.size(), on_device);
    CAF_REQUIRE_EQUAL(on_device + p->on_host.size(), needed.size());
    CAF_REQUIRE_EQUAL(static_cast<size_t>(p->hits) + p->loads.size(),
                      on_device);
    for (auto& ld : p->admissions) {
      CAF_REQUIRE_EQUAL(slots.count(ld.slot), 0u);
      CAF_REQUIRE(c.resident(layer, ld.expert));
    }
  }
}
