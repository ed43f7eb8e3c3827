#include "gpu/cuda/moe_layer.hpp"

#include <algorithm>
#include <numeric>

#include "gpu/cuda/cuda_check.hpp"
#include "gpu/cuda/gating.cuh"
#include "gpu/cuda/permute.cuh"
#include "gpu/cuda/route_decode.cuh"

namespace volt::cuda {

moe_layer_runner::moe_layer_runner(const expert_layer& layer, int64_t k,
                                   int64_t max_tokens, cublasHandle_t cublas)
  : layer_(layer), k_(k), max_tokens_(max_tokens), cublas_(cublas) {
  auto e = layer.n_experts;
  auto pairs = max_tokens * k;
  logits_.resize(sizeof(float) * max_tokens * e);
  topk_ids_.resize(sizeof(int32_t) * pairs);
  topk_weights_.resize(sizeof(float) * pairs);
  sorted_pair_.resize(sizeof(int32_t) * pairs);
  pair_row_.resize(sizeof(int32_t) * pairs);
  offsets_.resize(sizeof(int32_t) * (e + 1));
  experts_.resize(sizeof(int32_t) * e);
  plan_ws_.resize(plan_dispatch_workspace_bytes(pairs, e));
  route_ws_.resize(route_decode_workspace_bytes(e, layer.hidden));
  CUDA_CHECK(cudaMemset(route_ws_.get(), 0, route_ws_.bytes()));
  if (layer.w13 != nullptr) {
    rows_.resize(sizeof(__nv_bfloat16) * pairs * layer.hidden);
    ffn_ws_.resize(expert_ffn_workspace_bytes(layer, pairs));
    auto splits = std::max(expert_ffn_splits(layer, ffn_path::decode),
                           expert_ffn_splits(layer, ffn_path::gemm));
    y_.resize(sizeof(float) * splits * pairs * layer.hidden);
  }
  host_offsets_.reserve(sizeof(int32_t) * (e + 1));
  host_experts_.resize(static_cast<size_t>(e));
  slots_host_.reserve(sizeof(int32_t) * static_cast<size_t>(e));
  std::iota(host_experts_.begin(), host_experts_.end(), 0);
  CUDA_CHECK(cudaMemcpy(experts_.get(), host_experts_.data(),
                        sizeof(int32_t) * e, cudaMemcpyHostToDevice));
  cublas_workspace_.resize(size_t{32} << 20);
  CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_.get(),
                                  cublas_workspace_.bytes()));
}

moe_layer_runner::~moe_layer_runner() {
  clear_graphs();
}

void moe_layer_runner::clear_graphs() {
  for (auto& [key, exec] : graphs_)
    cudaGraphExecDestroy(exec);
  graphs_.clear();
}

void moe_layer_runner::set_routing_mask(const uint8_t* available,
                                        uint8_t* degraded) {
  if (available == available_ && degraded == degraded_)
    return;
  available_ = available;
  degraded_ = degraded;
  clear_graphs(); // they hold the old pointers
}

ffn_path moe_layer_runner::run(const __nv_bfloat16* x, const float* x_router,
                               const float* gate, int64_t n, ffn_path path,
                               float* out, bool accumulate,
                               cudaStream_t stream) {
  if (path == ffn_path::automatic)
    path = choose_ffn_path(layer_, n);
  if (n == 0 || path != ffn_path::decode || stream == nullptr)
    return enqueue(x, x_router, gate, n, path, out, accumulate, stream);
  graph_key key{n, x, x_router, gate, out, accumulate};
  auto it = graphs_.find(key);
  if (it == graphs_.end())
    it = graphs_
           .emplace(key, capture_graph(stream,
                                       [&] {
                                         enqueue(x, x_router, gate, n, path,
                                                 out, accumulate, stream);
                                       }))
           .first;
  CUDA_CHECK(cudaGraphLaunch(it->second, stream));
  return path;
}

void moe_layer_runner::route(const float* x_router, const float* gate,
                             int64_t n, cudaStream_t stream) {
  if (n > max_tokens_)
    throw cuda_error("moe_layer_runner: " + std::to_string(n)
                     + " tokens, built for " + std::to_string(max_tokens_));
  auto e = layer_.n_experts;
  auto hidden = layer_.hidden;
  if (route_decode_supported(n, e, k_, hidden)) {
    route_decode(x_router, gate, nullptr, n, hidden, e, k_,
                 topk_ids_.get<int32_t>(), topk_weights_.get<float>(),
                 sorted_pair_.get<int32_t>(), offsets_.get<int32_t>(),
                 pair_row_.get<int32_t>(), nullptr, false, route_ws_.get(),
                 stream, available_, degraded_);
    return;
  }
  // Router logits [n, E] = x · gateᵀ in f32 (no TF32: expert choice must
  // follow the CPU reference wherever the logits are not within rounding).
  const float one = 1.0f;
  const float zero = 0.0f;
  bind_stream(cublas_, stream);
  CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N,
                            static_cast<int>(e), static_cast<int>(n),
                            static_cast<int>(hidden), &one, gate, CUDA_R_32F,
                            static_cast<int>(hidden), x_router, CUDA_R_32F,
                            static_cast<int>(hidden), &zero, logits_.get(),
                            CUDA_R_32F, static_cast<int>(e),
                            CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
  topk_gating(logits_.get<float>(), n, e, k_, topk_ids_.get<int32_t>(),
              topk_weights_.get<float>(), stream, available_, degraded_);
  plan_dispatch(topk_ids_.get<int32_t>(), n, k_, e, plan_ws_.get(),
                plan_ws_.bytes(), sorted_pair_.get<int32_t>(),
                offsets_.get<int32_t>(), pair_row_.get<int32_t>(), stream);
}

void moe_layer_runner::replace_routing(const int32_t* topk_ids, int64_t n,
                                       cudaStream_t stream) {
  const auto e = layer_.n_experts;
  copy_words(topk_ids, n * k_, topk_ids_.get(), stream);
  plan_dispatch(topk_ids_.get<int32_t>(), n, k_, e, plan_ws_.get(),
                plan_ws_.bytes(), sorted_pair_.get<int32_t>(),
                offsets_.get<int32_t>(), pair_row_.get<int32_t>(), stream);
}

void moe_layer_runner::combine_grouped(const float* grouped, int64_t n,
                                       float* out, cudaStream_t stream) {
  combine(grouped, 1, pair_row_.get<int32_t>(), topk_weights_.get<float>(), n,
          k_, layer_.hidden, out, stream, true);
}

ffn_path moe_layer_runner::enqueue(const __nv_bfloat16* x,
                                   const float* x_router, const float* gate,
                                   int64_t n, ffn_path path, float* out,
                                   bool accumulate, cudaStream_t stream) {
  if (path == ffn_path::automatic)
    path = choose_ffn_path(layer_, n);
  if (n == 0)
    return path;
  auto e = layer_.n_experts;
  auto hidden = layer_.hidden;
  if (route_decode_supported(n, e, k_, hidden)) {
    route_decode(x_router, gate, x, n, hidden, e, k_,
                 topk_ids_.get<int32_t>(), topk_weights_.get<float>(),
                 sorted_pair_.get<int32_t>(), offsets_.get<int32_t>(),
                 pair_row_.get<int32_t>(), rows_.get(),
                 decode_takes_f16(layer_, path), route_ws_.get(), stream,
                 available_, degraded_);
  } else {
    route(x_router, gate, n, stream);
    gather(x, n, path, stream);
  }
  return compute_routed(n, path, out, accumulate, stream);
}

ffn_path moe_layer_runner::enqueue_routed(const __nv_bfloat16* x, int64_t n,
                                          ffn_path path, float* out,
                                          bool accumulate,
                                          cudaStream_t stream) {
  if (path == ffn_path::automatic)
    path = choose_ffn_path(layer_, n);
  if (n == 0)
    return path;
  gather(x, n, path, stream);
  return compute_routed(n, path, out, accumulate, stream);
}

void moe_layer_runner::set_expert_slots(const std::vector<int32_t>& slot_of,
                                        cudaStream_t stream) {
  for (size_t g = 0; g < host_experts_.size(); ++g)
    host_experts_[g] = g < slot_of.size() ? slot_of[g] : -1;
  // Through a kernel from pinned memory: a copy would wait behind the
  // cache's copies of whole experts on the copy engine. The caller reads
  // each layer's routing back (a synchronisation) before calling again.
  auto* pinned = slots_host_.get<int32_t>();
  std::copy(host_experts_.begin(), host_experts_.end(), pinned);
  copy_words(pinned, static_cast<int64_t>(host_experts_.size()),
             experts_.get(), stream);
}

void moe_layer_runner::set_outside_rows(
  const float* rows, std::vector<std::pair<int64_t, int64_t>> ranges) {
  outside_rows_ = rows;
  outside_ranges_ = std::move(ranges);
}

void moe_layer_runner::set_device_parts(std::vector<device_part> parts) {
  device_parts_ = std::move(parts);
}

void moe_layer_runner::add_device_parts(float* y0, cudaStream_t stream) {
  if (device_parts_.empty())
    return;
  const auto hidden = layer_.hidden;
  // Sized before anything is enqueued: a buffer reallocated between two
  // parts could be freed under the first one's kernels.
  size_t y_bytes = 0;
  for (const auto& dp : device_parts_) {
    const auto path = choose_ffn_path(dp.part, dp.count);
    y_bytes = std::max(y_bytes, sizeof(float) * dp.count * hidden
                                  * (1 + expert_ffn_splits(dp.part, path)));
  }
  part_y_.reserve(y_bytes);
  part_groups_host_.reserve(sizeof(int32_t) * 3 * device_parts_.size());
  part_groups_.reserve(sizeof(int32_t) * 3 * device_parts_.size());
  auto* table = part_groups_host_.get<int32_t>();
  for (size_t i = 0; i < device_parts_.size(); ++i) {
    const auto& dp = device_parts_[i];
    if (dp.count == 0)
      continue;
    const auto splits
      = expert_ffn_splits(dp.part, choose_ffn_path(dp.part, dp.count));
    const auto rows_bytes = sizeof(float) * dp.count * hidden;
    auto* y = part_y_.get<float>();
    float* rows_out = y0 + dp.first * hidden;
    CUDA_CHECK(cudaMemcpyAsync(y, rows_out, rows_bytes,
                               cudaMemcpyDeviceToDevice, stream));
    expert_ffn_single(dp.part, rows_.get<__nv_bfloat16>() + dp.first * hidden,
                      dp.count, table + 3 * i,
                      part_groups_.get<int32_t>() + 3 * i, ffn_ws_.get(),
                      ffn_ws_.bytes(), y + dp.count * hidden, cublas_, stream);
    sum_splits(y, 1 + splits, dp.count, hidden, rows_out, stream);
  }
  device_parts_.clear();
}

void moe_layer_runner::gather(const __nv_bfloat16* x, int64_t n,
                              ffn_path path, cudaStream_t stream) {
  auto pairs = n * k_;
  if (decode_takes_f16(layer_, path))
    gather_rows(x, sorted_pair_.get<int32_t>(), pairs, k_, layer_.hidden,
                rows_.get<__half>(), stream);
  else
    gather_rows(x, sorted_pair_.get<int32_t>(), pairs, k_, layer_.hidden,
                rows_.get<__nv_bfloat16>(), stream);
}

void moe_layer_runner::allow_precise() {
  const auto pairs = max_tokens_ * k_;
  rows_lo_.resize(sizeof(__nv_bfloat16) * pairs * layer_.hidden);
  precise_ws_.resize(expert_ffn_precise_workspace_bytes(layer_, pairs));
}

void moe_layer_runner::enqueue_routed_precise(const __nv_bfloat16* x,
                                              const __nv_bfloat16* x_lo,
                                              int64_t n, float* out,
                                              bool accumulate,
                                              cudaStream_t stream) {
  if (precise_ws_.bytes() == 0)
    throw cuda_error("moe_layer_runner: precise activations need "
                     "allow_precise() first");
  if (!outside_ranges_.empty() || !device_parts_.empty())
    throw cuda_error("moe_layer_runner: precise activations take no outside "
                     "rows or device parts");
  if (n == 0)
    return;
  const auto pairs = n * k_;
  const auto* order = sorted_pair_.get<int32_t>();
  gather_rows(x, order, pairs, k_, layer_.hidden, rows_.get<__nv_bfloat16>(),
              stream);
  gather_rows(x_lo, order, pairs, k_, layer_.hidden,
              rows_lo_.get<__nv_bfloat16>(), stream);
  expert_ffn_precise(layer_, host_groups(stream), rows_.get<__nv_bfloat16>(),
                     rows_lo_.get<__nv_bfloat16>(), pairs, precise_ws_.get(),
                     precise_ws_.bytes(), y_.get<float>(), cublas_, stream);
  combine(y_.get<float>(), 1, pair_row_.get<int32_t>(),
          topk_weights_.get<float>(), n, k_, layer_.hidden, out, stream,
          accumulate);
}

ffn_groups moe_layer_runner::host_groups(cudaStream_t stream) {
  const auto e = layer_.n_experts;
  ffn_groups groups;
  groups.n_groups = e;
  groups.expert = experts_.get<int32_t>();
  groups.offsets = offsets_.get<int32_t>();
  CUDA_CHECK(cudaMemcpyAsync(host_offsets_.get(), offsets_.get(),
                             sizeof(int32_t) * (e + 1), cudaMemcpyDeviceToHost,
                             stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  groups.host_expert = host_experts_.data();
  groups.host_offsets = host_offsets_.get<int32_t>();
  return groups;
}

ffn_path moe_layer_runner::compute_routed(int64_t n, ffn_path path,
                                          float* out, bool accumulate,
                                          cudaStream_t stream) {
  auto e = layer_.n_experts;
  auto pairs = n * k_;
  ffn_groups groups;
  if (path == ffn_path::gemm) {
    groups = host_groups(stream);
  } else {
    groups.n_groups = e;
    groups.expert = experts_.get<int32_t>();
    groups.offsets = offsets_.get<int32_t>();
  }
  // Tile for twice the average rows per expert, not the n-row bound: a
  // heavier expert takes a second pass, every other one saves registers.
  auto factor = get_decode_tuning().rows_hint_factor;
  if (factor > 0)
    groups.rows_hint = std::max<int64_t>(1, factor * ((pairs + e - 1) / e));
  path = expert_ffn(layer_, groups, rows_.get(), pairs, n, path,
                    ffn_ws_.get(), ffn_ws_.bytes(), y_.get<float>(), cublas_,
                    stream);
  // Experts computed elsewhere: their rows of the first partial take the
  // outputs, the other partials' rows are zero (the kernels skipped them).
  const auto splits = expert_ffn_splits(layer_, path);
  const auto row_bytes = sizeof(float) * static_cast<size_t>(layer_.hidden);
  for (auto [first, count] : outside_ranges_) {
    float* y0 = y_.get<float>() + first * layer_.hidden;
    copy_words(outside_rows_ + first * layer_.hidden, count * layer_.hidden,
               y0, stream);
    for (int64_t sp = 1; sp < splits; ++sp)
      CUDA_CHECK(cudaMemsetAsync(y0 + sp * pairs * layer_.hidden, 0,
                                 row_bytes * count, stream));
  }
  outside_ranges_.clear();
  add_device_parts(y_.get<float>(), stream);
  combine(y_.get<float>(), splits, pair_row_.get<int32_t>(),
          topk_weights_.get<float>(), n, k_, layer_.hidden, out, stream,
          accumulate);
  return path;
}

} // namespace volt::cuda
