// The CUDA executor's expert cache ([worker] gpu_expert_slots): every
// expert in pinned host memory, a fixed number of slots on the device. Each
// layer's routing is read back, the experts it needs are made resident
// (expert_slot_cache decides where) and the expert kernels run over the
// slots. With the predictor on, the cache learns from the routing which
// experts follow which and evicts by that; with staging on too, what the
// predictor expects a layer to use is copied on a second stream when the
// layer (or the one before) begins, so that a right guess costs no wait (a
// wrong one costs the bus as much as a miss). Every copy into a slot
// follows, in stream order, the work enqueued before it: an expert is never
// overwritten while a kernel reads it.

#include <algorithm>

#include "base/error.hpp"
#include "gpu/cuda/cuda_check.hpp"
#include "model/cuda_executor_impl.hpp"

namespace volt {

void cuda_executor::build_expert_cache(int64_t slots) {
  const auto& first = w_.layers.front().experts;
  const bool int8 = first.format == cuda::weight_format::int8;
  const size_t elem = int8 ? 1 : 2;
  const auto h = static_cast<size_t>(cfg_.hidden_size);
  const auto ffn = static_cast<size_t>(cfg_.intermediate_size);
  const auto n = static_cast<size_t>(slots);
  slot_w13_.resize(elem * n * 2 * ffn * h);
  slot_w2_.resize(elem * n * h * ffn);
  slot_layer_ = first;
  slot_layer_.w13 = slot_w13_.get();
  slot_layer_.w2 = slot_w2_.get();
  if (int8) {
    slot_s13_.resize(sizeof(float) * n * 2 * ffn);
    slot_s2_.resize(sizeof(float) * n * h);
    slot_layer_.s13 = slot_s13_.get<float>();
    slot_layer_.s2 = slot_s2_.get<float>();
  }
  for (const auto& lw : w_.layers)
    host_layers_.push_back(lw.experts);
  copy_stream_ = std::make_unique<cuda::stream>();
  compute_mark_ = std::make_unique<cuda::event>();
  const auto layers = static_cast<size_t>(cfg_.num_hidden_layers);
  for (size_t l = 0; l < layers; ++l) {
    routed_ev_.push_back(std::make_unique<cuda::event>(true));
    copied_ev_.push_back(std::make_unique<cuda::event>(true));
  }
  timed_.assign(layers, false);
  cache_step_.assign(layers, expert_cache_layer{});
  const auto e = cfg_.num_local_experts;
  plan_host_.reserve(sizeof(int32_t)
                     * (max_rows_ * cfg_.num_experts_per_tok + e + 1));
}

bool cuda_executor::observe_routing(routing_observer* obs) {
  // Without a cache the engine predicts from the recorded routing of the
  // finished step: reading every layer's routing back would cost the
  // decode graphs.
  if (!cache_)
    return false;
  observer_ = obs;
  return true;
}

int64_t cuda_executor::copy_experts(
  const std::vector<expert_slot_cache::load>& loads) {
  if (loads.empty())
    return 0;
  auto cs = copy_stream_->get();
  CUDA_CHECK(cudaEventRecord(compute_mark_->get(), stream_->get()));
  CUDA_CHECK(cudaStreamWaitEvent(cs, compute_mark_->get(), 0));
  const bool int8 = slot_layer_.format == cuda::weight_format::int8;
  const size_t elem = int8 ? 1 : 2;
  const auto h = static_cast<size_t>(cfg_.hidden_size);
  const auto ffn = static_cast<size_t>(cfg_.intermediate_size);
  const size_t w13 = elem * 2 * ffn * h;
  const size_t w2 = elem * h * ffn;
  const size_t s13 = sizeof(float) * 2 * ffn;
  const size_t s2 = sizeof(float) * h;
  int64_t bytes = 0;
  auto copy = [&](const void* base, size_t stride, uint32_t expert, void* slots,
                  int32_t slot) {
    CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(slots) + stride * slot,
                               static_cast<const char*>(base) + stride * expert,
                               stride, cudaMemcpyHostToDevice, cs));
    bytes += static_cast<int64_t>(stride);
  };
  for (const auto& ld : loads) {
    const auto& src = host_layers_[static_cast<size_t>(ld.layer)];
    copy(src.w13, w13, ld.expert, slot_w13_.get(), ld.slot);
    copy(src.w2, w2, ld.expert, slot_w2_.get(), ld.slot);
    if (int8) {
      copy(src.s13, s13, ld.expert, slot_s13_.get(), ld.slot);
      copy(src.s2, s2, ld.expert, slot_s2_.get(), ld.slot);
    }
  }
  return bytes;
}

void cuda_executor::stage_experts(int64_t l, int64_t n) {
  if (observer_ == nullptr)
    return;
  // The predictor hears of every layer as it begins (it scores itself);
  // without staging nothing else follows.
  if (!stage_predicted_) {
    (void)observer_->layer_begins(l, nullptr, n);
    return;
  }
  const auto e = static_cast<size_t>(cfg_.num_local_experts);
  // This layer's guess, and the next one's: its copies then overlap this
  // layer's work too.
  for (auto layer : {l, l + 1}) {
    if (layer >= cfg_.num_hidden_layers)
      break;
    const auto& want = observer_->layer_begins(layer, nullptr, n);
    // Best first: a falling chance by rank; the layer's other experts none.
    std::vector<float> chance(e, 0.0f);
    for (size_t i = 0; i < want.size(); ++i)
      if (want[i] < e)
        chance[want[i]] = static_cast<float>(want.size() - i)
                          / static_cast<float>(want.size());
    cache_->set_chances(layer, chance);
    cache_step_[static_cast<size_t>(layer)].staged_bytes
      += copy_experts(cache_->stage(layer, want));
  }
}

void cuda_executor::enqueue_cached_moe(int64_t l, int64_t n) {
  auto s = stream_->get();
  const auto& lw = w_.layers[static_cast<size_t>(l)];
  const auto e = cfg_.num_local_experts;
  const auto k = cfg_.num_experts_per_tok;
  moe_->route(x32_.get<float>(), lw.gate, n, s);
  replace_routing(l, n);
  const auto layer = static_cast<size_t>(l);
  CUDA_CHECK(cudaEventRecord(routed_ev_[layer]->get(), s));
  auto* offsets = plan_host_.get<int32_t>();
  auto* topk = offsets + e + 1;
  CUDA_CHECK(cudaMemcpyAsync(offsets, moe_->expert_offsets(),
                             sizeof(int32_t) * (e + 1), cudaMemcpyDeviceToHost,
                             s));
  if (observer_ != nullptr)
    CUDA_CHECK(cudaMemcpyAsync(topk, moe_->topk_ids(), sizeof(int32_t) * n * k,
                               cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<uint32_t> needed;
  for (int64_t x = 0; x < e; ++x)
    if (offsets[x + 1] > offsets[x])
      needed.push_back(static_cast<uint32_t>(x));
  // With the predictor on, the cache also learns which experts follow
  // which, and evicts by that too.
  if (observer_ != nullptr)
    cache_->observe(l, needed);
  auto placed = cache_->admit(l, needed);
  if (!placed)
    throw cuda::cuda_error(describe(placed.error()));
  auto& counts = cache_step_[layer];
  counts.hits += placed->hits;
  counts.misses += static_cast<int64_t>(placed->loads.size());
  counts.loaded_bytes += copy_experts(placed->loads);
  // The experts wait for every copy so far: the misses' and any staged
  // ones still on their way.
  CUDA_CHECK(cudaEventRecord(copied_ev_[layer]->get(), copy_stream_->get()));
  CUDA_CHECK(cudaStreamWaitEvent(s, copied_ev_[layer]->get(), 0));
  timed_[layer] = true;
  moe_->set_expert_slots(placed->slot_of, s);
  moe_->enqueue_routed(xn_.get<__nv_bfloat16>(), n, cuda::ffn_path::automatic,
                       hidden_.get<float>(), true, s);
  if (observer_ != nullptr)
    observer_->layer_routed(l, topk, n);
}

void cuda_executor::collect_stalls() {
  for (size_t l = 0; l < timed_.size(); ++l) {
    if (!timed_[l])
      continue;
    timed_[l] = false;
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, routed_ev_[l]->get(),
                                    copied_ev_[l]->get()));
    if (ms > 0)
      cache_step_[l].stall_seconds += ms / 1e3;
  }
}

} // namespace volt
