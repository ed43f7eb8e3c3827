#pragma once

// The CUDA executor's class, shared by its two source files:
// cuda_executor.cpp (building it: weights, buffers, the KV pool) and
// cuda_step.cpp (running steps, with decode steps replayed as CUDA graphs).

#include <chrono>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include <cublas_v2.h>

#include "gpu/cuda/attention.cuh"
#include "gpu/cuda/dense_ops.cuh"
#include "gpu/cuda/device_buffer.hpp"
#include "gpu/cuda/moe_layer.hpp"
#include "model/cuda_executor.hpp"
#include "model/cuda_expert_slots.hpp"
#include "model/cuda_weights.hpp"
#include "model/expert_slot_cache.hpp"

namespace volt {

class cuda_executor : public model_executor {
public:
  /// Builds everything on the current device (see make_cuda_executor).
  /// With `cache`, the weights hold the experts in host memory and the
  /// executor keeps cache->slots() of them on the device.
  cuda_executor(const checkpoint& ckpt, const cuda_executor_options& options,
                cuda_model_weights weights, std::string device_name,
                std::unique_ptr<expert_slot_cache> cache);
  ~cuda_executor() override;

  const model_config& config() const override {
    return cfg_;
  }

  std::string where() const override {
    return "cuda:" + std::to_string(device_) + " (" + device_name_ + ")";
  }

  const std::vector<uint32_t>& local_experts() const override {
    return local_;
  }

  int64_t num_pages() const override {
    return num_pages_;
  }

  int64_t page_size() const override {
    return page_size_;
  }

  int64_t max_step_rows() const override {
    return max_rows_;
  }

  bool blocks_on_device() const override {
    return true;
  }

  caf::expected<step_progress> start(step_request req) override;

  caf::expected<step_progress> resume(std::vector<float> outputs) override;

  void abandon() override {
    step_.reset();
  }

  bool observe_routing(routing_observer* obs) override;

  /// Bytes of the KV pool on the device.
  size_t kv_bytes() const {
    return k_cache_.bytes() + v_cache_.bytes() + k_lo_.bytes() + v_lo_.bytes();
  }

private:
  /// The step in flight.
  struct step_state {
    step_request req;
    int64_t n = 0;
    int64_t max_keys = 0;
    /// Entries per block table in the input copy.
    int64_t width = 0;
    /// Query tiles on the tensor cores, and rows for the SIMT kernel.
    int64_t tiles = 0;
    int64_t simt = 0;
    /// Rows whose logits are computed: greedy and logit rows, ascending.
    std::vector<int64_t> sample_rows;
    int64_t layer = 0;
  };

  // -- building (cuda_executor.cpp)
  void allocate_buffers();
  void build_rope_tables();
  void size_kv_pool(const cuda_executor_options& options);

  // -- steps (cuda_step.cpp)
  /// Writes the step's inputs into the pinned block (one copy to the device).
  void stage_inputs(step_state& st);
  void copy_pages(const std::vector<page_copy>& copies);
  /// Enqueues the input copy and the embedding lookup.
  void enqueue_inputs(int64_t n, int64_t width);
  /// Enqueues layer `l`'s attention and, with local experts, its MoE (else
  /// its routing).
  void enqueue_layer(int64_t l, int64_t n, int64_t max_keys, int64_t width);
  /// Enqueues final norm, LM head and argmax for `m` sample rows (null
  /// `rows`: rows 0..m-1); logits of rows [0, m) stay in logits_ when m fits
  /// one pass.
  void enqueue_head(int64_t m, const int32_t* rows);
  /// Whether n rows times an [n_out, k] projection take the decode kernel
  /// (cuda::dense_decode) rather than cuBLAS.
  bool dense_decode_here(int64_t n, int64_t n_out, int64_t k) const;
  /// Copies the logits the step asks for among sample rows [first, first +
  /// count), which the logits buffer holds from its row 0, to the host.
  void copy_logits(int64_t first, int64_t count);
  /// Runs layers from st.layer on; stops at a remote MoE or the end.
  caf::expected<step_progress> run_layers();
  /// Reads layer st.layer's routing (done by enqueue_layer) back and returns
  /// its rows for the experts elsewhere.
  expert_rows remote_rows(int64_t n);
  step_result finish();
  bool graphable(const step_state& st) const;
  /// Whether the step in progress replays routing (step_request's
  /// replayed_routing), and the replacement of layer l's routing by it
  /// (after the router ran; nothing without a replay).
  bool replays_routing() const;
  void replace_routing(int64_t l, int64_t n);
  /// Replays (capturing on first use) the decode step of `n` rows.
  void replay_decode(int64_t n, int64_t width);
  /// Whether this step replays a graph (the second step of its shape on).
  bool use_graph(const step_state& st);
  /// Whether this step of `n` rows is the one VOLT_PROFILE_STEP names
  /// ("ROWS[,SKIP]": the SKIP+1-th step of ROWS rows); starts the CUDA
  /// profiler (ncu --profile-from-start off) for it.
  bool profile_this(int64_t n);
  /// Makes the device's routing mask that of `masked` (copied on change).
  void upload_mask(const std::vector<uint32_t>& masked,
                   const std::vector<uint8_t>& available);
  /// Enqueues the copy of the step's degraded-row flags to the host (steps
  /// with masked experts only).
  void copy_degraded();
  /// Stops the profiler and prints the step's host enqueue and total time.
  void report_profiled_step(int64_t n,
                            std::chrono::steady_clock::time_point t0);
  void gemm(const __nv_bfloat16* x, const __nv_bfloat16* w, int64_t n,
            int64_t in, int64_t out, float* y, float beta);
  cuda::attention_shape attention_shape_of() const;

  // -- the expert cache (cuda_expert_cache.cpp), with options.expert_slots
  /// Slots on the device, the copy stream and the events.
  void build_expert_cache(int64_t slots);
  /// Copies what the predictor says layer `l` will use into free or less
  /// wanted slots, on the copy stream, while the layer's attention runs.
  void stage_experts(int64_t l, int64_t n);
  /// Layer `l`'s MoE with the cache: routes, reads the plan back, makes
  /// the needed experts resident, then the experts and combine.
  void enqueue_cached_moe(int64_t l, int64_t n);
  /// The host computes `experts` of layer `l` over their grouped rows
  /// (host_x_ holds the layer's input) into host_out_ (of `split`'s expert
  /// its part only), and hands the outputs to the MoE runner.
  /// - offsets       (in): [n_experts + 1], the plan's group offsets
  /// - grouped_pairs (in): [n * k], the pair of each grouped row
  void compute_on_host(int64_t l, const std::vector<uint32_t>& experts,
                       const int32_t* offsets, const int32_t* grouped_pairs,
                       const host_split& split);
  /// Adds the stall times measured by the step's events.
  void collect_stalls();

  model_config cfg_;
  int device_;
  std::string device_name_;
  bool local_experts_;
  std::vector<uint32_t> local_;
  int64_t max_rows_;
  /// The shape has a tensor-core prefill kernel.
  bool tensor_core_prefill_ = false;
  /// cuda_executor_options::precise_activations.
  bool precise_ = false;
  int64_t max_graph_rows_;
  int64_t page_size_;
  int64_t num_pages_ = 0;
  /// Widest block table an input copy can carry (a power of two).
  int64_t max_width_ = 0;
  int64_t qkv_dim_ = 0;
  int64_t head_rows_ = 0; // rows of one LM-head pass
  std::unique_ptr<cuda::stream> stream_;
  cublasHandle_t cublas_ = nullptr;
  cuda_model_weights w_;
  std::unique_ptr<cuda::moe_layer_runner> moe_;
  // Inputs: [tokens | positions | slots | row_table | sample_rows] of
  // max_rows each, then block_tables [max_rows, table_stride]; i32.
  cuda::pinned_buffer in_host_;
  cuda::device_buffer in_dev_;
  cuda::device_buffer rope_cos_, rope_sin_;
  cuda::device_buffer k_cache_, v_cache_;
  cuda::device_buffer hidden_, xn_, x32_, qkv_, q_, attn_, attn_ws_;
  /// The K-split partial products of q/k/v, then of o, for steps of up to
  /// dense_rows_ rows (cuda::dense_decode), and their split counts (chosen
  /// once: they depend on the shapes and the device only).
  cuda::device_buffer dense_parts_;
  int64_t dense_rows_ = 0;
  int64_t qkv_splits_ = 1;
  int64_t o_splits_ = 1;
  /// The precise activations' second halves (empty without them): of the
  /// KV cache, of xn_ and of attn_.
  cuda::device_buffer k_lo_, v_lo_, xn_lo_, attn_lo_;
  cuda::device_buffer xf_, logits_, greedy_dev_, grouped_out_;
  cuda::pinned_buffer greedy_host_, logits_host_, plan_host_, rows_host_,
    routing_host_;
  /// The step's replayed routing ([n_layers, n, k] i32), read by kernels.
  cuda::pinned_buffer replay_host_;
  /// Degraded routing: the experts gating may choose ([n_experts] u8, all
  /// ones unless the step masks some) and the rows that lost one ([max_rows]
  /// u8, cleared by each step with a mask), which every kernel launch and
  /// graph reads; the mask they hold now.
  cuda::device_buffer available_dev_, degraded_dev_;
  cuda::pinned_buffer available_host_, degraded_host_;
  std::vector<uint32_t> masked_;
  /// Decode graphs by (rows, block-table width); a shape runs once without
  /// a graph first, so that cuBLAS and the kernels load outside a capture.
  std::map<std::pair<int64_t, int64_t>, cudaGraphExec_t> graphs_;
  std::set<std::pair<int64_t, int64_t>> seen_shapes_;
  std::unique_ptr<step_state> step_;
  int64_t profile_rows_ = -1;
  int64_t profile_skip_ = 0;
  std::chrono::steady_clock::time_point enqueued_at_;

  // The expert cache (null without one): its policy, its slots and host
  // copies; per layer the events that time a stall (routing done, copies
  // done) and this step's counts.
  std::unique_ptr<expert_slot_cache> cache_;
  /// Copy the experts the predictor expects ahead of their layer
  /// (cuda_executor_options::stage_predicted).
  bool stage_predicted_ = false;
  std::unique_ptr<cuda_expert_slots> slots_;
  /// Per layer: routing done; the experts' inputs ready (copies waited
  /// for, the host's experts computed).
  std::vector<std::unique_ptr<cuda::event>> routed_ev_, ready_ev_;
  /// Where misses may run ([worker] expert_misses), and the host's
  /// buffers: the layer's input [max_rows, hidden] bf16, the grouped
  /// outputs [max_rows * k, hidden] f32, and its scratch.
  expert_miss_mode miss_mode_ = expert_miss_mode::automatic;
  cuda::pinned_buffer host_x_, host_out_;
  std::vector<float> host_in_, host_scratch_;
  std::vector<bool> timed_;
  std::vector<expert_cache_layer> cache_step_;
  routing_observer* observer_ = nullptr;
};

} // namespace volt
