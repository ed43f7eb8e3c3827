#pragma once

// Which experts of which layers occupy a GPU's expert slots, when the device
// holds fewer slots than the model has experts ([worker] gpu_expert_slots):
// the policy of the CUDA executor's expert cache, as a plain object on the
// executor's thread. The executor copies the weights; this decides what goes
// where. An expert a layer is about to compute is pinned until that layer's
// next admit; among the rest the victim is the one least likely to be needed
// soon, the least recently used among equals. Likely: the predictor's chance
// (set_chances), and once the cache observes routing, the chance learned
// from it that the expert's layer needs it at the next step: how often each
// expert followed the layer's last experts from one step to the next (a
// Markov chain per layer). Without either, eviction is plain LRU, which
// cycles through a layer's experts when a step's needs exceed its share.
//
// Where the host may compute a miss (allow_host), not every miss is copied:
// one less likely to be needed again than the expert it would evict runs on
// the host and leaves the slots alone; of those worth keeping, the layer
// waits for as many copies as keep its wait shortest and the host computes
// the rest while their copies go on in the background (a later step finds
// them resident). The wait is modelled from the costs measured at start: a
// copy per expert on the bus, and an expert's rows on the host, one expert
// after another; where the host is slower than the bus, misses turned away
// go back to the bus while the host would make the layer wait longer.

#include <cstdint>
#include <string>
#include <vector>

#include "caf/expected.hpp"

namespace volt {

class expert_slot_cache {
public:
  /// One copy to make: expert `expert` of `layer` into slot `slot`.
  struct load {
    int32_t slot;
    int64_t layer;
    uint32_t expert;
  };

  /// What the layer's experts need done before they run.
  struct placement {
    /// Slot of each needed expert: [n_experts], -1 for experts not needed.
    std::vector<int32_t> slot_of;
    /// Copies for the needed experts not resident (misses) that the layer
    /// waits for.
    std::vector<load> loads;
    /// Needed experts the host computes this time (slot_of -1); those of
    /// them in `admissions` are being copied meanwhile, for later steps.
    std::vector<uint32_t> on_host;
    /// Copies the layer does not wait for: experts it computes on the host.
    std::vector<load> admissions;
    /// Needed experts found resident or already staged.
    int64_t hits = 0;
  };

  /// `slots` slots for a model of `n_layers` layers of `n_experts` experts
  /// whose steps need at most `max_needed` experts of one layer at once
  /// (min(n_experts, rows × top-k)). Errors, naming `origin` (the key that
  /// set the slots), when those do not fit or there are more slots than
  /// experts.
  static caf::expected<expert_slot_cache>
  make(int64_t slots, int64_t n_layers, int64_t n_experts, int64_t max_needed,
       const std::string& origin);

  int64_t slots() const {
    return static_cast<int64_t>(owner_.size());
  }

  /// Makes the experts `needed` of `layer` resident, evicting others, and
  /// pins them until the next admit (or release_all): the executor computes
  /// them before it copies anything over them. With the host allowed and
  /// `bus_busy` (copies still queued on the bus), a miss the host can take
  /// gets a free slot but evicts nothing: its copy would queue behind the
  /// others and delay the next layers' waited copies and split parts, which
  /// costs more than the later hits it would buy (scripts/
  /// expert_cache_sim.py: 11 % less stall at batch 1 on the trace, less in
  /// every case modelled). Errors when more are needed at once than make()
  /// was told.
  caf::expected<placement> admit(int64_t layer,
                                 const std::vector<uint32_t>& needed,
                                 bool bus_busy = false);

  /// Copies to stage `wanted` of `layer` (best first) ahead of its routing:
  /// only into free slots or over unpinned experts whose chance is lower
  /// than the wanted one's; never over a pinned one. Staged experts count as
  /// resident from here on (the executor orders its copies).
  std::vector<load> stage(int64_t layer, const std::vector<uint32_t>& wanted);

  /// The predictor's chance that `layer`'s experts are needed soon:
  /// [n_experts] in [0, 1] (default 0 for all). Eviction prefers low ones.
  void set_chances(int64_t layer, const std::vector<float>& chances);

  /// set_chances from a predictor's list for `layer`, best first: a
  /// chance falling with the rank (the first 1, the last 1/n), 0 for the
  /// layer's experts not named.
  void set_ranked(int64_t layer, const std::vector<uint32_t>& best_first);

  /// `layer` of the current step uses `used` (before admit): learns which
  /// experts follow the layer's previous ones, and from then on weighs
  /// eviction by the learned chance of each expert being used next.
  void observe(int64_t layer, const std::vector<uint32_t>& used);

  /// The chance, learned by observe(), that `layer`'s next step uses
  /// `expert` (0 before anything is learned).
  float learned_chance(int64_t layer, uint32_t expert) const;

  /// From now on a miss may run on the host: a copy takes `copy_seconds`
  /// per expert, the host `host_seconds` per expert (both > 0). With
  /// `always`, every miss runs there (those worth keeping copied in the
  /// background); else each layer's wait decides, and a host slower than
  /// the bus takes only what shortens it.
  void allow_host(double copy_seconds, double host_seconds,
                  bool always = false);

  bool host_allowed() const {
    return host_seconds_ > 0;
  }

  /// allow_host's costs (0 before it).
  double copy_seconds() const {
    return copy_seconds_;
  }
  double host_seconds() const {
    return host_seconds_;
  }

  /// Unpins everything (the step is over or abandoned).
  void release_all();

  /// Whether expert `expert` of `layer` is resident (or staged).
  bool resident(int64_t layer, uint32_t expert) const {
    return slot_[index(layer, expert)] >= 0;
  }

private:
  expert_slot_cache(int64_t slots, int64_t n_layers, int64_t n_experts,
                    int64_t max_needed);

  size_t index(int64_t layer, uint32_t expert) const {
    return static_cast<size_t>(layer * n_experts_ + expert);
  }

  /// The slot to overwrite, neither pinned nor in `keep`: a free one first,
  /// else the one with the lowest chance, the least recently used among
  /// equals; -1 when there is none or, with `below` >= 0, when none has a
  /// chance below it.
  int32_t victim(float below, const std::vector<int32_t>& keep) const;

  /// Puts expert `key` in `slot`, evicting its owner.
  void place(int32_t slot, size_t key);

  /// How likely expert `key` is needed soon: the predictor's chance or the
  /// learned one, the higher.
  float chance_of(size_t key) const;

  /// admit()'s misses where the host may compute them: sorts them into
  /// waited copies, background copies and host work.
  void place_misses(int64_t layer, const std::vector<uint32_t>& misses,
                    bool bus_busy, placement& out);

  int64_t n_experts_;
  int64_t max_needed_;
  /// Per (layer, expert): its slot or -1; its chance.
  std::vector<int32_t> slot_;
  std::vector<float> chance_;
  /// Per slot: its (layer, expert) index or -1; last use; pinned by the
  /// admit in force.
  std::vector<int64_t> owner_;
  std::vector<uint64_t> used_;
  std::vector<bool> pinned_;
  uint64_t clock_ = 0;
  /// What observe() learned, per layer: [n_layers, n_experts, n_experts]
  /// times expert b followed expert a, [n_layers, n_experts] times a was
  /// followed at all, and the experts of the layer's last step.
  std::vector<float> follows_;
  std::vector<float> followed_;
  std::vector<std::vector<uint32_t>> last_;
  bool learning_ = false;
  /// allow_host's costs; 0: every miss is copied.
  double copy_seconds_ = 0;
  double host_seconds_ = 0;
  bool host_always_ = false;
};

} // namespace volt
