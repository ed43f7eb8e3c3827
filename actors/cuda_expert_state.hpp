#pragma once

// The device side of a worker's CUDA expert actor (CUDA builds only): its
// streams, cuBLAS handle and buffers, its experts on the device or, with an
// expert cache, in pinned host memory with a number of slots on the device.

#include <memory>
#include <vector>

#include <cublas_v2.h>

#include "actors/cuda_expert.hpp"
#include "actors/messages.hpp"
#include "gpu/cuda/device_buffer.hpp"
#include "gpu/cuda/expert_ffn.cuh"
#include "model/cuda_expert_slots.hpp"
#include "model/cuda_weights.hpp"
#include "model/expert_slot_cache.hpp"
#include "model/step.hpp"

namespace volt {

/// Built on the spawning thread, then used only by the actor's own
/// (detached) thread.
class cuda_expert_state {
public:
  /// Takes the experts `weights` loaded for `hosted` (on the device, or
  /// with `cache` in pinned host memory) and sets up streams and slots.
  /// Throws on a CUDA failure.
  cuda_expert_state(hosted_experts hosted, cuda_model_weights weights,
                    const cuda_expert_options& options,
                    std::unique_ptr<expert_slot_cache> cache);

  cuda_expert_state(const cuda_expert_state&) = delete;
  cuda_expert_state& operator=(const cuda_expert_state&) = delete;

  ~cuda_expert_state();

  const hosted_experts& hosted() const {
    return hosted_;
  }

  /// Runs a checked batch: rows f32 [n, hidden] in, f32 [n, hidden] out.
  /// With a cache, then stages the batch's stage_next for the next layer.
  wire_tensor run(const expert_batch& batch);

private:
  /// Index of expert `id` among the hosted ones (a checked batch's ids are
  /// all hosted).
  int32_t index_of(uint32_t id) const {
    return hosted_.index_of(id);
  }
  /// With a cache: makes the batch's experts resident (or sends misses to
  /// the host, one of them perhaps split with the device) and returns each
  /// group's slot (-1: the host computes it).
  std::vector<int32_t> admit(const expert_batch& batch,
                             const std::vector<int32_t>& offsets,
                             std::vector<int64_t>& host_groups);
  /// The host computes the groups `host_groups` of `batch` into `out`
  /// ([n_rows, hidden], at each group's rows; the split group's part only).
  void compute_on_host(const expert_batch& batch,
                       const std::vector<int32_t>& offsets,
                       const std::vector<int64_t>& host_groups, float* out);
  /// Enqueues the device's part of the split group over its rows (bf16 in
  /// rows_dev_) and the copy of its outputs to part_out_host_.
  void enqueue_part(const std::vector<int32_t>& offsets, int64_t groups);
  /// Copies what the router expects layer + 1 to use into free or less
  /// wanted slots, behind this batch's work.
  void stage_next(const expert_batch& batch);

  hosted_experts hosted_;
  /// Every layer's experts: on the device, or with a cache in pinned host
  /// memory (weights_.host_arena).
  cuda_model_weights weights_;
  int device_;
  std::unique_ptr<cuda::stream> compute_;
  std::unique_ptr<cuda::stream> copy_;
  cublasHandle_t cublas_ = nullptr;
  /// weights_' layers' experts, by layer.
  std::vector<cuda::expert_layer> layers_;
  std::unique_ptr<expert_slot_cache> cache_;
  std::unique_ptr<cuda_expert_slots> slots_;
  std::shared_ptr<node_metrics> metrics_;
  /// Times the device's wait for copies: before it, after it, work done.
  std::unique_ptr<cuda::event> wait_begin_, wait_end_, work_done_;
  /// The batch in progress: its cache counts, and the slot of each of the
  /// cache's experts (-1: not on the device) whose copies it waits for.
  expert_cache_layer counts_;
  std::vector<int32_t> waited_slots_;
  /// The batch's group split between the host and the device (-1: none),
  /// the hidden units the device computes, and its part of the weights.
  int64_t split_group_ = -1;
  int64_t split_units_ = 0;
  cuda::expert_layer part_;
  cuda::device_buffer part_y_, part_out_;
  cuda::pinned_buffer part_out_host_;
  std::vector<float> host_in_, host_scratch_, host_out_;
  // Per-batch buffers, grown on demand.
  cuda::pinned_buffer in_host_, out_host_, groups_host_;
  cuda::device_buffer in_dev_, rows_dev_, groups_dev_, workspace_, y_dev_,
    out_dev_;
  std::vector<std::unique_ptr<cuda::event>> chunk_done_;
};

} // namespace volt
