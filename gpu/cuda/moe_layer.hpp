#pragma once

// The MoE block of one layer on the GPU, the one path that serves requests
// (the CUDA executor) and that `bench moe-layer` times: router product in f32
// (cuBLAS) → fused top-k gating → dispatch plan (CUB) → gather → expert FFN →
// combine into the residual; batches of up to 8 tokens route and gather in
// one launch (route_decode). Buffers are allocated once for up to
// `max_tokens` tokens. When the experts live on other nodes, `route` stops
// after the plan and `combine_grouped` adds their outputs.

#include <cstdint>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "gpu/cuda/device_buffer.hpp"
#include "gpu/cuda/expert_ffn.cuh"

namespace volt::cuda {

class moe_layer_runner {
public:
  /// `layer` must stay valid (device weights) while the runner lives; its
  /// weights may be null for a runner that only routes. The cuBLAS handle
  /// gets a fixed workspace here (nothing may allocate inside a graph
  /// capture).
  moe_layer_runner(const expert_layer& layer, int64_t k, int64_t max_tokens,
                   cublasHandle_t cublas);
  moe_layer_runner(const moe_layer_runner&) = delete;
  moe_layer_runner& operator=(const moe_layer_runner&) = delete;
  ~moe_layer_runner();

  /// Points the runner at another layer's experts (same shapes).
  void set_layer(const expert_layer& layer) {
    layer_ = layer;
  }

  /// Forgets the captured CUDA graphs (call after set_decode_tuning).
  void clear_graphs();

  /// Routes every later call with these device flags (topk_gating's
  /// `available` [n_experts] and `degraded` [max_tokens]; null: every
  /// expert, no flags). The buffers' contents may change between calls and
  /// graph replays; they must outlive the runner's use of them.
  void set_routing_mask(const uint8_t* available, uint8_t* degraded);

  /// out (+)= Σ_j topk_weights[t, j] · expert_{topk_ids[t, j]}(x[t]), the
  /// router's logits = x_router · gateᵀ in f32.
  /// - x        (in):     [n, hidden] bf16, the experts' input
  /// - x_router (in):     [n, hidden] f32, the same rows before rounding
  /// - gate     (in):     [n_experts, hidden] f32 (the router)
  /// - out      (in/out): [n, hidden] f32; added to when `accumulate`
  /// Enqueues on `stream` without synchronising unless the path is gemm,
  /// which reads the expert offsets back to the host.
  ffn_path enqueue(const __nv_bfloat16* x, const float* x_router,
                   const float* gate, int64_t n, ffn_path path, float* out,
                   bool accumulate, cudaStream_t stream);

  /// Same as enqueue, but on a non-default stream a decode-path call is
  /// captured once per (n, buffers) as a CUDA graph and replayed: a decode
  /// step of one layer is otherwise launch-bound (the benchmark's mode).
  ffn_path run(const __nv_bfloat16* x, const float* x_router,
               const float* gate, int64_t n, ffn_path path, float* out,
               bool accumulate, cudaStream_t stream);

  /// Routing only: router product, gating and plan (results below).
  void route(const float* x_router, const float* gate, int64_t n,
             cudaStream_t stream);

  /// After route(): each token's experts become `topk_ids`, its weights
  /// stay the router's, and the plan is made again. Benchmarks replay
  /// recorded routing with it.
  /// - topk_ids (in): [n, k] expert ids in [0, n_experts), device or pinned
  ///   host memory (copy_words: valid until the stream has read it)
  void replace_routing(const int32_t* topk_ids, int64_t n,
                       cudaStream_t stream);

  /// The rest of enqueue after route(): gathers the rows of x [n, hidden]
  /// bf16 in the plan's order, runs the experts and combines into `out`.
  ffn_path enqueue_routed(const __nv_bfloat16* x, int64_t n, ffn_path path,
                          float* out, bool accumulate, cudaStream_t stream);

  /// Makes room for enqueue_routed_precise (its rows' second halves and
  /// the f32 scratch of expert_ffn_precise, for max_tokens tokens).
  void allow_precise();
  /// enqueue_routed with the precise activations (bf16_split.cuh): the
  /// experts' input is x + x_lo, each product runs over both halves
  /// (expert_ffn_precise, cuBLAS per expert: it reads the expert offsets
  /// back to the host). Needs allow_precise() first; no outside rows or
  /// device parts.
  /// - x, x_lo (in):     [n, hidden] bf16
  /// - out     (in/out): [n, hidden] f32; added to when `accumulate`
  void enqueue_routed_precise(const __nv_bfloat16* x,
                              const __nv_bfloat16* x_lo, int64_t n,
                              float* out, bool accumulate,
                              cudaStream_t stream);
  /// Expert g of the layer runs with the weights at index slot_of[g] of the
  /// layer's arrays (an expert cache's slots) from the next enqueue on;
  /// enqueued on `stream`. -1: not computed here (no rows, or rows that
  /// set_outside_rows provides). Until called, expert g is at g.
  void set_expert_slots(const std::vector<int32_t>& slot_of,
                        cudaStream_t stream);

  /// For the next enqueue_routed only: the grouped rows [first, first +
  /// count) of each range belong to experts computed elsewhere (slot -1)
  /// and take their outputs from `rows`, read by a kernel on the call's
  /// stream (`rows` must stay valid until it has run).
  /// - rows (in): [n * k, hidden] f32, host (pinned) memory, in the plan's
  ///   grouped order; only the ranges' rows are read
  void set_outside_rows(const float* rows,
                        std::vector<std::pair<int64_t, int64_t>> ranges);

  /// An expert split between the host and the device along its FFN: the
  /// grouped rows [first, first + count), in a range of set_outside_rows
  /// (whose rows hold the host's part of their outputs), also run `part`,
  /// the expert's hidden units on the device (one expert, its ffn that
  /// share, bf16), and the two parts are summed.
  struct device_part {
    int64_t first = 0;
    int64_t count = 0;
    expert_layer part;
  };

  /// For the next enqueue_routed only: the device's parts of split experts
  /// (their weights must stay valid until the stream has run them).
  void set_device_parts(std::vector<device_part> parts);

  /// Adds the outputs of grouped rows (computed elsewhere) to the residual.
  /// - grouped (in):     [n * k, hidden] f32, in the plan's grouped order
  /// - out     (in/out): [n, hidden] f32
  void combine_grouped(const float* grouped, int64_t n, float* out,
                       cudaStream_t stream);

  /// Results of the last routing (device).
  const int32_t* topk_ids() const { // [n, k]
    return topk_ids_.get<int32_t>();
  }
  const float* topk_weights() const { // [n, k]
    return topk_weights_.get<float>();
  }
  const int32_t* sorted_pair() const { // [n * k], pair of each grouped row
    return sorted_pair_.get<int32_t>();
  }
  const int32_t* expert_offsets() const { // [n_experts + 1]
    return offsets_.get<int32_t>();
  }

private:
  /// Gathers x's rows in the plan's grouped order into rows_.
  void gather(const __nv_bfloat16* x, int64_t n, ffn_path path,
              cudaStream_t stream);
  /// The plan's groups with host copies of the offsets (read back: a
  /// synchronisation), for the cuBLAS paths.
  ffn_groups host_groups(cudaStream_t stream);
  /// Experts over the gathered rows, then combine into `out`.
  ffn_path compute_routed(int64_t n, ffn_path path, float* out,
                          bool accumulate, cudaStream_t stream);
  /// Adds each device part's outputs to its rows of the first partial.
  /// - y0 (in/out): [n * k, hidden] f32, the grouped rows' outputs
  void add_device_parts(float* y0, cudaStream_t stream);

  using graph_key
    = std::tuple<int64_t, const void*, const void*, const void*, void*, bool>;

  expert_layer layer_;
  int64_t k_;
  int64_t max_tokens_;
  cublasHandle_t cublas_;
  device_buffer logits_, topk_ids_, topk_weights_, sorted_pair_, pair_row_,
    offsets_, experts_, plan_ws_, route_ws_, rows_, ffn_ws_, y_;
  /// The precise activations' second halves of rows_, and their scratch.
  device_buffer rows_lo_, precise_ws_;
  device_buffer cublas_workspace_;
  pinned_buffer host_offsets_;
  std::map<graph_key, cudaGraphExec_t> graphs_;
  std::vector<int32_t> host_experts_;
  pinned_buffer slots_host_; // set_expert_slots' source
  const float* outside_rows_ = nullptr;
  std::vector<std::pair<int64_t, int64_t>> outside_ranges_;
  std::vector<device_part> device_parts_;
  /// A device part's group table ([expert 0 | offsets 0, count], host and
  /// device) and its outputs: [1 + splits, count, hidden] f32, the first
  /// slice the rows' outputs so far.
  pinned_buffer part_groups_host_;
  device_buffer part_groups_, part_y_;
  const uint8_t* available_ = nullptr;
  uint8_t* degraded_ = nullptr;
};

} // namespace volt::cuda
