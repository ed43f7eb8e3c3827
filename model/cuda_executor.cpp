#include "model/cuda_executor.hpp"

#include "base/error.hpp"

#ifdef VOLT_HAVE_CUDA

#  include <cinttypes>
#  include <cmath>
#  include <cstdio>
#  include <cstdlib>
#  include <numeric>

#  include "base/log.hpp"
#  include "gpu/cuda/cuda_check.hpp"
#  include "gpu/cuda/dense_decode.cuh"
#  include "gpu/cuda/expert_ffn.cuh"
#  include "gpu/cuda/prefill_attention.cuh"
#  include "model/cuda_executor_impl.hpp"

namespace volt {

namespace {

/// Rows of one LM-head pass: its logits buffer is [head_rows, vocab] f32.
constexpr int64_t head_pass_rows = 256;

} // namespace

cuda_executor::cuda_executor(const checkpoint& ckpt,
                             const cuda_executor_options& options,
                             cuda_model_weights weights,
                             std::string device_name,
                             std::unique_ptr<expert_slot_cache> cache)
  : cfg_(ckpt.config()), device_(options.device),
    device_name_(std::move(device_name)),
    local_experts_(options.local_experts),
    max_rows_(std::max<int64_t>(options.max_step_rows, 1)),
    precise_(options.precise_activations),
    max_graph_rows_(options.max_graph_rows),
    page_size_(std::max<int64_t>(options.page_size, 1)),
    w_(std::move(weights)), cache_(std::move(cache)),
    stage_predicted_(options.stage_predicted),
    miss_mode_(options.expert_misses) {
  if (local_experts_) {
    local_.resize(static_cast<size_t>(cfg_.num_local_experts));
    std::iota(local_.begin(), local_.end(), 0u);
  }
  stream_ = std::make_unique<cuda::stream>();
  CUBLAS_CHECK(cublasCreate(&cublas_));
  // Bound before the MoE runner gives the handle its fixed workspace, which
  // a later change of stream would drop.
  CUBLAS_CHECK(cublasSetStream(cublas_, stream_->get()));
  qkv_dim_ = (cfg_.num_attention_heads + 2 * cfg_.num_key_value_heads)
             * cfg_.head_dim;
  auto pages_per_sequence
    = (cfg_.max_position_embeddings + page_size_ - 1) / page_size_;
  max_width_ = 16;
  while (max_width_ < pages_per_sequence)
    max_width_ *= 2;
  head_rows_ = std::min(max_rows_, head_pass_rows);
  // A developer's switch for profiling one step with ncu; see profile_this.
  if (const char* p = std::getenv("VOLT_PROFILE_STEP"))
    std::sscanf(p, "%" SCNd64 ",%" SCNd64, &profile_rows_, &profile_skip_);
  // The tensor-core kernel rounds q and the probabilities to bf16: the
  // precise activations keep every row on the SIMT kernel.
  tensor_core_prefill_
    = options.tensor_core_prefill && !precise_
      && cuda::prefill_attention_supported(attention_shape_of());
  allocate_buffers();
  if (cache_)
    build_expert_cache(cache_->slots());
  build_rope_tables();
  size_kv_pool(options);
}

cuda_executor::~cuda_executor() {
  cudaSetDevice(device_);
  for (auto& [n, exec] : graphs_)
    cudaGraphExecDestroy(exec);
  moe_.reset();
  if (cublas_ != nullptr)
    cublasDestroy(cublas_);
}

cuda::attention_shape cuda_executor::attention_shape_of() const {
  cuda::attention_shape shape;
  shape.n_heads = cfg_.num_attention_heads;
  shape.n_kv_heads = cfg_.num_key_value_heads;
  shape.head_dim = cfg_.head_dim;
  shape.page_size = page_size_;
  shape.sliding_window = cfg_.sliding_window;
  return shape;
}

void cuda_executor::allocate_buffers() {
  const int64_t r = max_rows_;
  const int64_t h = cfg_.hidden_size;
  const int64_t q = cfg_.num_attention_heads * cfg_.head_dim;
  const int64_t k = cfg_.num_experts_per_tok;
  const auto inputs = sizeof(int32_t) * (8 * r + r * max_width_);
  in_host_.reserve(inputs);
  in_dev_.resize(inputs);
  hidden_.resize(sizeof(float) * r * h);
  xn_.resize(sizeof(__nv_bfloat16) * r * h);
  x32_.resize(sizeof(float) * r * h);
  qkv_.resize(sizeof(float) * r * qkv_dim_);
  dense_rows_ = std::min(r, cuda::get_decode_tuning().dense_decode_max_rows);
  qkv_splits_ = cuda::dense_decode_splits(qkv_dim_, h);
  o_splits_ = cuda::dense_decode_splits(h, q);
  dense_parts_.resize(sizeof(float) * dense_rows_
                      * std::max(qkv_splits_ * qkv_dim_, o_splits_ * h));
  q_.resize(sizeof(float) * r * q);
  attn_.resize(sizeof(__nv_bfloat16) * r * q);
  // Decode graphs attend with the model's whole context as the key bound
  // and cannot allocate while captured: room for every graph's row count.
  // Other steps grow the workspace when they need more.
  auto shape = attention_shape_of();
  size_t ws = cuda::paged_attention_workspace_bytes(shape, r, r);
  for (int64_t n = 1; n <= std::min(r, max_graph_rows_); ++n)
    ws = std::max(ws, cuda::paged_attention_workspace_bytes(
                        shape, n, cfg_.max_position_embeddings));
  attn_ws_.resize(ws);
  xf_.resize(sizeof(__nv_bfloat16) * r * h);
  logits_.resize(sizeof(float) * head_rows_ * cfg_.vocab_size);
  greedy_dev_.resize(sizeof(int32_t) * r);
  greedy_host_.reserve(sizeof(int32_t) * r);
  routing_host_.reserve(sizeof(int32_t) * cfg_.num_hidden_layers * r * k);
  if (!local_experts_) {
    grouped_out_.resize(sizeof(float) * r * k * h);
    plan_host_.reserve(sizeof(int32_t) * (r * k + cfg_.num_local_experts + 1));
    rows_host_.reserve(sizeof(float) * r * h);
  }
  moe_ = std::make_unique<cuda::moe_layer_runner>(w_.layers.front().experts, k,
                                                  r, cublas_);
  if (precise_) {
    xn_lo_.resize(xn_.bytes());
    attn_lo_.resize(attn_.bytes());
    moe_->allow_precise();
  }
  const auto e = cfg_.num_local_experts;
  available_dev_.resize(static_cast<size_t>(e));
  CUDA_CHECK(cudaMemset(available_dev_.get(), 1, static_cast<size_t>(e)));
  available_host_.reserve(static_cast<size_t>(e));
  degraded_dev_.resize(static_cast<size_t>(r));
  degraded_host_.reserve(static_cast<size_t>(r));
  moe_->set_routing_mask(available_dev_.get<uint8_t>(),
                         degraded_dev_.get<uint8_t>());
}

void cuda_executor::build_rope_tables() {
  // Angles in double, rounded once, as the CPU twin (cpu::rope) computes them.
  const int64_t half = cfg_.head_dim / 2;
  const int64_t positions = cfg_.max_position_embeddings;
  std::vector<float> cos_table(static_cast<size_t>(positions * half));
  std::vector<float> sin_table(cos_table.size());
  for (int64_t i = 0; i < half; ++i) {
    double inv_freq = std::pow(cfg_.rope_theta,
                               -2.0 * static_cast<double>(i)
                                 / static_cast<double>(cfg_.head_dim));
    for (int64_t p = 0; p < positions; ++p) {
      double angle = static_cast<double>(p) * inv_freq;
      cos_table[p * half + i] = static_cast<float>(std::cos(angle));
      sin_table[p * half + i] = static_cast<float>(std::sin(angle));
    }
  }
  rope_cos_.resize(sizeof(float) * cos_table.size());
  rope_sin_.resize(sizeof(float) * sin_table.size());
  CUDA_CHECK(cudaMemcpy(rope_cos_.get(), cos_table.data(), rope_cos_.bytes(),
                        cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(rope_sin_.get(), sin_table.data(), rope_sin_.bytes(),
                        cudaMemcpyHostToDevice));
}

void cuda_executor::size_kv_pool(const cuda_executor_options& options) {
  // K and V, every layer, bf16 (with the precise activations, a pair).
  const int64_t page_bytes = int64_t{precise_ ? 4 : 2} * cfg_.num_hidden_layers
                             * page_size_
                             * cfg_.num_key_value_heads * cfg_.head_dim
                             * static_cast<int64_t>(sizeof(__nv_bfloat16));
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  int64_t pages = options.num_pages;
  std::string rule = "[kv_cache] num_pages";
  if (pages <= 0 && options.kv_memory_mib > 0) {
    pages = (options.kv_memory_mib << 20) / page_bytes;
    rule = "[kv_cache] memory_mib = " + std::to_string(options.kv_memory_mib);
  } else if (pages <= 0) {
    pages = static_cast<int64_t>(static_cast<double>(free_bytes)
                                 * options.kv_memory_percent / 100.0)
            / page_bytes;
    rule = std::to_string(options.kv_memory_percent) + " % of the "
           + std::to_string(free_bytes >> 20) + " MiB left";
  }
  // The page table keeps a record per page on the host: beyond twice what
  // max_batch sequences of the model's whole context need (room for the
  // prefix cache), pages only cost host memory and start-up.
  if (options.num_pages <= 0) {
    auto per_sequence
      = (cfg_.max_position_embeddings + page_size_ - 1) / page_size_;
    auto cap = 2 * std::max<int64_t>(options.max_sequences, 1) * per_sequence;
    if (pages > cap) {
      pages = cap;
      rule += ", capped at twice max_batch full-context sequences";
    }
  }
  pages = std::min<int64_t>(pages, int64_t{1} << 30);
  if (pages < 1 || static_cast<size_t>(pages * page_bytes) > free_bytes)
    throw cuda::cuda_error(
      "the KV cache (" + rule + ") needs "
      + std::to_string((std::max<int64_t>(pages, 1) * page_bytes) >> 20)
      + " MiB; " + std::to_string(free_bytes >> 20)
      + " MiB of the device are free after the weights");
  num_pages_ = pages;
  const auto part = static_cast<size_t>(pages * page_bytes / (precise_ ? 4 : 2));
  k_cache_.resize(part);
  v_cache_.resize(part);
  if (precise_) {
    k_lo_.resize(part);
    v_lo_.resize(part);
  }
  VOLT_INFO("executor", "KV cache: " << pages << " pages of " << page_size_
                                     << " tokens (" << pages * page_size_
                                     << " tokens, "
                                     << ((pages * page_bytes) >> 20)
                                     << " MiB, " << rule << ") on cuda:"
                                     << device_);
}

caf::expected<std::shared_ptr<model_executor>>
make_cuda_executor(const checkpoint& ckpt,
                   const cuda_executor_options& options) {
  auto where = options.device_origin + " cuda:" + std::to_string(options.device);
  auto fail = [&](const std::string& why) {
    return make_volt_error(volt_errc::invalid_config, where + ": " + why);
  };
  int count = 0;
  if (auto status = cudaGetDeviceCount(&count); status != cudaSuccess)
    return fail(std::string{"no usable CUDA device ("}
                + cudaGetErrorString(status) + ")");
  if (options.device < 0 || options.device >= count)
    return fail("no such device (" + std::to_string(count)
                + " CUDA devices found)");
  const auto& cfg = ckpt.config();
  cuda::expert_layer shape;
  shape.hidden = cfg.hidden_size;
  shape.ffn = cfg.intermediate_size;
  if (auto why = cuda::expert_ffn_unsupported(shape))
    return fail(why);
  if (!cuda::attention_head_dim_supported(cfg.head_dim))
    return fail("head_dim " + std::to_string(cfg.head_dim)
                + " is not one the attention kernels are built for (16, 32, "
                  "64, 128)");
  if (options.precise_activations && !options.local_experts)
    return fail("[model] activations = \"float32\" needs the experts on "
                "this node (a standalone node): rows sent to workers are bf16");
  if (options.precise_activations && options.expert_slots > 0)
    return fail("[model] activations = \"float32\" does not work with an "
                "expert cache ([worker] gpu_expert_slots)");
  std::unique_ptr<expert_slot_cache> cache;
  if (options.expert_slots > 0 && options.local_experts) {
    // A step can need every expert of a layer, or as many as its rows
    // choose if fewer.
    auto needed = std::min(cfg.num_local_experts,
                           std::max<int64_t>(options.max_step_rows, 1)
                             * cfg.num_experts_per_tok);
    auto made = expert_slot_cache::make(
      options.expert_slots, cfg.num_hidden_layers, cfg.num_local_experts,
      needed, options.expert_slots_origin);
    if (!made)
      return std::move(made.error());
    cache = std::make_unique<expert_slot_cache>(std::move(*made));
  }
  try {
    CUDA_CHECK(cudaSetDevice(options.device));
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, options.device));
    cuda_load_options load;
    load.experts = options.local_experts;
    load.host_experts = cache != nullptr;
    load.quantization = options.quantization;
    load.show_progress = options.show_progress;
    load.where = where;
    cuda::stream loading;
    auto weights = load_cuda_weights(ckpt, load, loading.get());
    if (!weights)
      return std::move(weights.error());
    VOLT_INFO("executor",
              "weights on cuda:" << options.device << " (" << prop.name
                                 << "): " << (weights->device_bytes >> 20)
                                 << " MiB from " << (weights->file_bytes >> 20)
                                 << " MiB of files in " << weights->seconds
                                 << " s ("
                                 << weights->file_bytes / 1e9
                                      / std::max(weights->seconds, 1e-9)
                                 << " GB/s)");
    if (cache) {
      auto expert = weights->layers.front().experts.expert_bytes();
      VOLT_INFO("executor",
                "expert cache: " << cache->slots() << " of "
                                 << cfg.num_hidden_layers
                                      * cfg.num_local_experts
                                 << " experts on cuda:" << options.device
                                 << " (" << ((cache->slots() * expert) >> 20)
                                 << " MiB), all of them in "
                                 << (weights->host_bytes >> 20)
                                 << " MiB of pinned host memory"
                                 << (host_takes_misses(
                                       weights->layers.front().experts.format,
                                       options.expert_misses)
                                       ? ", and one expert's worth more on "
                                         "the device for the part of a miss "
                                         "the host shares"
                                       : ""));
    }
    return std::shared_ptr<model_executor>{std::make_shared<cuda_executor>(
      ckpt, options, std::move(*weights), prop.name, std::move(cache))};
  } catch (const std::exception& ex) {
    return fail(ex.what());
  }
}

} // namespace volt

#else // VOLT_HAVE_CUDA

namespace volt {

caf::expected<std::shared_ptr<model_executor>>
make_cuda_executor(const checkpoint&, const cuda_executor_options& options) {
  return make_volt_error(volt_errc::invalid_config,
                         "volt-node was built without CUDA; "
                           + options.device_origin + " cuda:"
                           + std::to_string(options.device)
                           + " needs a CUDA build");
}

} // namespace volt

#endif // VOLT_HAVE_CUDA
