#pragma once

// The whole MoE block of one layer on the GPU, for benchmarks and tests:
// router product (cuBLAS) → fused top-k gating → dispatch plan (CUB) →
// gather → expert FFN → combine. Buffers are allocated once for up to
// `max_tokens` tokens.

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "gpu/cuda/device_buffer.hpp"
#include "gpu/cuda/expert_ffn.cuh"

namespace volt::cuda {

class moe_layer_runner {
public:
  /// `layer` must stay valid (device weights) while the runner lives.
  moe_layer_runner(const expert_layer& layer, int64_t k, int64_t max_tokens,
                   cublasHandle_t cublas);
  moe_layer_runner(const moe_layer_runner&) = delete;
  moe_layer_runner& operator=(const moe_layer_runner&) = delete;
  ~moe_layer_runner();

  /// Forgets the captured CUDA graphs (call after set_decode_tuning).
  void clear_graphs();

  /// out = Σ_j topk_weights[t, j] · expert_{topk_ids[t, j]}(x[t]).
  /// - x      (in):  [n, hidden] bf16, device
  /// - gate   (in):  [n_experts, hidden] bf16, device (the router)
  /// - out    (out): [n, hidden] f32, device
  /// Returns the FFN path taken. The gemm path reads the expert offsets back
  /// to the host (one stream synchronisation); decode does not, and on a
  /// non-default stream its launches are captured once per (n, buffers) as a
  /// CUDA graph and replayed: a decode step is otherwise launch-bound.
  ffn_path run(const __nv_bfloat16* x, const __nv_bfloat16* gate, int64_t n,
               ffn_path path, float* out, cudaStream_t stream);

  /// Results of the last run's routing (device): [n, k].
  const int32_t* topk_ids() const {
    return topk_ids_.get<int32_t>();
  }
  const float* topk_weights() const {
    return topk_weights_.get<float>();
  }

private:
  using graph_key = std::tuple<int64_t, const void*, const void*, void*>;

  /// Enqueues the whole block on `stream` (no host synchronisation unless
  /// the path is gemm).
  ffn_path enqueue(const __nv_bfloat16* x, const __nv_bfloat16* gate,
                   int64_t n, ffn_path path, float* out, cudaStream_t stream);

  expert_layer layer_;
  int64_t k_;
  int64_t max_tokens_;
  cublasHandle_t cublas_;
  device_buffer logits_, topk_ids_, topk_weights_, sorted_pair_, pair_row_,
    offsets_, experts_, plan_ws_, rows_, ffn_ws_, y_;
  device_buffer cublas_workspace_;
  pinned_buffer host_offsets_;
  std::map<graph_key, cudaGraphExec_t> graphs_;
  std::vector<int32_t> host_experts_;
};

} // namespace volt::cuda
