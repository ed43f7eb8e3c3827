#pragma once

// The device half of a GPU expert cache: a fixed number of expert slots on
// the device, every expert's copy in pinned host memory, a copy stream and an
// event per slot. expert_slot_cache decides what goes where; this moves the
// bytes and orders them. Shared by the CUDA executor (a standalone node's
// local experts) and a worker's CUDA expert actor. CUDA builds only.

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
  /// format and shape; `slots` device slots of that format. Allocates on the
  /// current device.
  cuda_expert_slots(std::vector<cuda::expert_layer> host_layers,
                    int64_t slots);

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
  /// kernel reads it), each followed by its slot's event. Returns their
  /// bytes.
  int64_t copy(const std::vector<expert_slot_cache::load>& loads,
               cudaStream_t after);

  /// Makes `s` wait for the latest copy into each slot of `slot_of` (the
  /// negative entries are not on the device).
  void wait_for(const std::vector<int32_t>& slot_of, cudaStream_t s) const;

  /// Seconds one expert's copy takes (the best of three), into slot 0,
  /// which must hold nothing yet.
  double time_copy(cudaStream_t after);

private:
  cuda::expert_layer slot_layer_;
  std::vector<cuda::expert_layer> host_layers_;
  cuda::device_buffer w13_, w2_, s13_, s2_;
  std::unique_ptr<cuda::stream> copy_stream_;
  std::unique_ptr<cuda::event> after_mark_;
  /// Per slot: recorded after the latest copy into it.
  std::vector<std::unique_ptr<cuda::event>> slot_ev_;
};

/// Times one bf16 expert computed on the host for one row (the best of
/// eight: the first runs page the weights in and wake the threads) against
/// one copy into slot 0 (which must hold nothing yet), lets `cache` send
/// misses to the host as `mode` allows, and logs both costs as `component`.
void let_host_take_misses(expert_slot_cache& cache, cuda_expert_slots& slots,
                          cudaStream_t after, expert_miss_mode mode,
                          const char* component);

} // namespace volt
