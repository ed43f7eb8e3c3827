#pragma once

// The device half of a GPU expert cache: a fixed number of expert slots on
// the device, every expert's copy in pinned host memory, a copy stream and an
// event per slot. expert_slot_cache decides what goes where; this moves the
// bytes and orders them. Shared by the CUDA executor (a standalone node's
// local experts) and a worker's CUDA expert actor. CUDA builds only.

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "gpu/cuda/device_buffer.hpp"
#include "gpu/cuda/expert_ffn.cuh"
#include "model/expert_miss_mode.hpp"
#include "model/expert_slot_cache.hpp"

namespace volt {

class cuda_expert_slots {
public:
  /// `host_layers`: every layer's experts in pinned host memory (the
  /// expert_layer layout, index = the cache's expert index), all of one
  /// format and shape; `slots` device slots of that format; with
  /// `part_buffer` (bf16 only) one expert's worth more for the device's
  /// part of a miss split with the host. Allocates on the current device.
  cuda_expert_slots(std::vector<cuda::expert_layer> host_layers,
                    int64_t slots, bool part_buffer = false);

  /// The slots as one layer whose expert index is the slot, for the expert
  /// kernels.
  const cuda::expert_layer& slot_layer() const {
    return slot_layer_;
  }

  /// Layer `l`'s experts in pinned host memory.
  const cuda::expert_layer& host_layer(int64_t l) const {
    return host_layers_[static_cast<size_t>(l)];
  }

  /// Enqueues the copies of `loads` on the copy stream, after everything
  /// enqueued on `after` so far (an expert is never overwritten while a
  /// kernel reads it), each followed by its slot's event. The expert of the
  /// latest copy_part takes that part from the part buffer (a device copy)
  /// and only the rest over the bus. Returns the bytes over the bus.
  int64_t copy(const std::vector<expert_slot_cache::load>& loads,
               cudaStream_t after);

  /// Makes `s` wait for the latest copy into each slot of `slot_of` (the
  /// negative entries are not on the device).
  void wait_for(const std::vector<int32_t>& slot_of, cudaStream_t s) const;

  /// Seconds one expert's copy takes (the best of three), into slot 0,
  /// which must hold nothing yet.
  double time_copy(cudaStream_t after);

  bool has_part_buffer() const {
    return part_w13_.bytes() > 0;
  }

  /// Copies the hidden units [0, units) of expert `expert` of `layer` (w1's
  /// and w3's first rows, w2's first columns) into the part buffer, after
  /// everything enqueued on `after` so far; returns their bytes and sets
  /// `part` to them as a layer of one expert whose ffn is `units` (a
  /// multiple of 64). The buffer holds one part at a time.
  int64_t copy_part(int64_t layer, uint32_t expert, int64_t units,
                    cudaStream_t after, cuda::expert_layer& part);

  /// Makes `s` wait for the latest copy_part.
  void wait_for_part(cudaStream_t s) const;

  /// Seconds the copy stream still needs for what is enqueued on it, by the
  /// rate time_copy measured (0 before it).
  double backlog_seconds() const;

private:
  cuda::expert_layer slot_layer_;
  std::vector<cuda::expert_layer> host_layers_;
  cuda::device_buffer w13_, w2_, s13_, s2_;
  std::unique_ptr<cuda::stream> copy_stream_;
  std::unique_ptr<cuda::event> after_mark_;
  /// Per slot: recorded after the latest copy into it.
  std::vector<std::unique_ptr<cuda::event>> slot_ev_;
  cuda::device_buffer part_w13_, part_w2_;
  std::unique_ptr<cuda::event> part_ev_;
  /// What the part buffer holds (units 0: nothing).
  int64_t part_layer_ = -1;
  uint32_t part_expert_ = 0;
  int64_t part_units_ = 0;
  /// Copies expert `ld` (bf16) whose first part_units_ hidden units are in
  /// the part buffer: those by device copies, the rest from the host.
  /// Returns the bytes from the host.
  int64_t copy_around_part(const expert_slot_cache::load& ld,
                           cudaStream_t cs);
  /// The copy rate time_copy measured, and when the copies enqueued so far
  /// should be done.
  double seconds_per_byte_ = 0;
  std::chrono::steady_clock::time_point bus_free_{};
  /// Adds `bytes` to the copy stream's backlog.
  void enqueued(int64_t bytes);
};

/// Whether the host may compute the misses of experts stored as `format`
/// under `mode`: its kernel takes bf16 experts, and `load` forces copies.
inline bool host_takes_misses(cuda::weight_format format,
                              expert_miss_mode mode) {
  return format == cuda::weight_format::bf16 && mode != expert_miss_mode::load;
}

/// How much of one of a layer's `on_host` misses (the experts the host
/// computes, one after another) the device takes over: the share of its FFN,
/// in hidden units (a multiple of 64; 0: none), that lets the bus, once it
/// has copied what is enqueued on it (`slots`' backlog: the layer's waited
/// copies, and earlier layers' background ones), and the host finish
/// together, by the costs `cache` was given (allow_host). Without the
/// backlog a split waits behind background copies and makes the layer
/// slower (scripts/expert_cache_sim.py).
int64_t split_units(const expert_slot_cache& cache,
                    const cuda_expert_slots& slots, size_t on_host,
                    int64_t ffn);

/// A host miss split with the device along its FFN: the device computes the
/// hidden units [0, units), the host the rest.
struct host_split {
  size_t index = 0; // into plan_split's candidates
  uint32_t expert = 0; // the cache's expert index
  int64_t units = 0; // 0: nothing split
};

/// Which of a layer's host misses the device shares, and how much
/// (split_units): the one with the most rows (the most host work), among
/// equals one that `admissions` copies in anyway (its copy then takes the
/// part from the device, cuda_expert_slots::copy). Nothing without a part
/// buffer or misses.
/// - experts (in): the host misses (cache expert indices), in the caller's
///   order; rows (in): the rows of each
host_split plan_split(const expert_slot_cache& cache,
                      const cuda_expert_slots& slots,
                      const std::vector<uint32_t>& experts,
                      const std::vector<int64_t>& rows,
                      const std::vector<expert_slot_cache::load>& admissions,
                      int64_t ffn);

/// Times one bf16 expert computed on the host for one row (the best of
/// eight: the first runs page the weights in and wake the threads) against
/// one copy into slot 0 (which must hold nothing yet), lets `cache` send
/// misses to the host as `mode` allows, and logs both costs as `component`.
void let_host_take_misses(expert_slot_cache& cache, cuda_expert_slots& slots,
                          cudaStream_t after, expert_miss_mode mode,
                          const char* component);

} // namespace volt
