// The CUDA executor's expert cache ([worker] gpu_expert_slots): every
// expert in pinned host memory, a fixed number of slots on the device. Each
// layer's routing is read back, the experts it needs are made resident
// (expert_slot_cache decides where) and the expert kernels run over the
// slots. With the predictor on, the cache learns from the routing which
// experts follow which and evicts by that; with staging on too, what the
// predictor expects a layer to use is copied on a second stream when the
// layer (or the one before) begins, so that a right guess costs no wait (a
// wrong one costs the bus as much as a miss). Where the host may compute
// misses ([worker] expert_misses), the policy sends some of them there: the
// host reads the layer's rows back, computes those experts from the pinned
// copy while the copies run, and their outputs join the device's in the
// combine. Every copy into a slot follows, in stream order, the work
// enqueued before it (an expert is never overwritten while a kernel reads
// it), and a layer waits only for the copies into the slots it reads.

#include <algorithm>
#include <cstring>

#include "base/error.hpp"
#include "gpu/cpu/cpu_ops.hpp"
#include "gpu/cuda/cuda_check.hpp"
#include "model/cuda_executor_impl.hpp"

namespace volt {

void cuda_executor::build_expert_cache(int64_t slots) {
  std::vector<cuda::expert_layer> host_layers;
  for (const auto& lw : w_.layers)
    host_layers.push_back(lw.experts);
  // With the host taking misses, one expert's worth more on the device for
  // the part of a miss the bus takes while the host computes the rest.
  const bool host_misses
    = host_takes_misses(host_layers.front().format, miss_mode_);
  slots_ = std::make_unique<cuda_expert_slots>(std::move(host_layers), slots,
                                               host_misses);
  const auto layers = static_cast<size_t>(cfg_.num_hidden_layers);
  for (size_t l = 0; l < layers; ++l) {
    routed_ev_.push_back(std::make_unique<cuda::event>(true));
    ready_ev_.push_back(std::make_unique<cuda::event>(true));
  }
  timed_.assign(layers, false);
  cache_step_.assign(layers, expert_cache_layer{});
  const auto e = cfg_.num_local_experts;
  const auto pairs = max_rows_ * cfg_.num_experts_per_tok;
  // Offsets, then every row's experts, then the grouped rows' pairs.
  plan_host_.reserve(sizeof(int32_t) * (2 * pairs + e + 1));
  if (host_misses) {
    const auto h = static_cast<size_t>(cfg_.hidden_size);
    host_x_.reserve(sizeof(__nv_bfloat16) * static_cast<size_t>(max_rows_) * h);
    host_out_.reserve(sizeof(float) * static_cast<size_t>(pairs) * h);
    let_host_take_misses(*cache_, *slots_, stream_->get(), miss_mode_,
                         "executor");
  }
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

void cuda_executor::compute_on_host(int64_t l,
                                    const std::vector<uint32_t>& experts,
                                    const int32_t* offsets,
                                    const int32_t* grouped_pairs,
                                    const host_split& split) {
  const auto h = cfg_.hidden_size;
  const auto ffn = cfg_.intermediate_size;
  const auto k = cfg_.num_experts_per_tok;
  const auto& src = slots_->host_layer(l);
  const auto* w13 = static_cast<const uint16_t*>(src.w13);
  const auto* w2 = static_cast<const uint16_t*>(src.w2);
  const auto* x = host_x_.get<uint16_t>(); // [n, h] bf16, the experts' input
  auto* out = host_out_.get<float>();
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (auto g : experts) {
    const int64_t first = offsets[g];
    const int64_t count = offsets[g + 1] - first;
    host_in_.resize(static_cast<size_t>(count * h));
    for (int64_t r = 0; r < count; ++r) {
      const auto* row = x + (grouped_pairs[first + r] / k) * h;
      for (int64_t i = 0; i < h; ++i) {
        const uint32_t bits = static_cast<uint32_t>(row[i]) << 16;
        std::memcpy(&host_in_[static_cast<size_t>(r * h + i)], &bits, 4);
      }
    }
    host_scratch_.resize(static_cast<size_t>(2 * count * ffn));
    // A split expert's hidden units from split.units on; the device has
    // the others.
    const int64_t from = g == split.expert ? split.units : 0;
    cpu::swiglu_expert_bf16_part(host_in_.data(), w13 + g * 2 * ffn * h,
                                 w2 + g * h * ffn, count, h, ffn, from, ffn,
                                 host_scratch_.data(), out + first * h);
    ranges.emplace_back(first, count);
  }
  moe_->set_outside_rows(out, std::move(ranges));
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
  // This layer's guess, and the next one's: its copies then overlap this
  // layer's work too.
  for (auto layer : {l, l + 1}) {
    if (layer >= cfg_.num_hidden_layers)
      break;
    const auto& want = observer_->layer_begins(layer, nullptr, n);
    cache_->set_ranked(layer, want);
    cache_step_[static_cast<size_t>(layer)].staged_bytes
      += slots_->copy(cache_->stage(layer, want), stream_->get());
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
  auto* grouped_pairs = topk + max_rows_ * k;
  CUDA_CHECK(cudaMemcpyAsync(offsets, moe_->expert_offsets(),
                             sizeof(int32_t) * (e + 1), cudaMemcpyDeviceToHost,
                             s));
  if (observer_ != nullptr)
    CUDA_CHECK(cudaMemcpyAsync(topk, moe_->topk_ids(), sizeof(int32_t) * n * k,
                               cudaMemcpyDeviceToHost, s));
  // What the host needs should it compute some of the experts: a few KiB.
  const bool host = cache_->host_allowed();
  if (host) {
    CUDA_CHECK(cudaMemcpyAsync(grouped_pairs, moe_->sorted_pair(),
                               sizeof(int32_t) * n * k, cudaMemcpyDeviceToHost,
                               s));
    CUDA_CHECK(cudaMemcpyAsync(host_x_.get(), xn_.get(),
                               sizeof(__nv_bfloat16) * n * cfg_.hidden_size,
                               cudaMemcpyDeviceToHost, s));
  }
  CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<uint32_t> needed;
  for (int64_t x = 0; x < e; ++x)
    if (offsets[x + 1] > offsets[x])
      needed.push_back(static_cast<uint32_t>(x));
  // With the predictor on, the cache also learns which experts follow
  // which, and evicts by that too.
  if (observer_ != nullptr)
    cache_->observe(l, needed);
  auto placed = cache_->admit(l, needed, slots_->backlog_seconds() > 0);
  if (!placed)
    throw cuda::cuda_error(describe(placed.error()));
  auto& counts = cache_step_[layer];
  counts.hits += placed->hits;
  counts.misses
    += static_cast<int64_t>(placed->loads.size() + placed->on_host.size());
  counts.host_computed += static_cast<int64_t>(placed->on_host.size());
  // The copies waited for first, then the device's part of a miss split
  // with the host: the background ones queue behind them.
  counts.loaded_bytes += slots_->copy(placed->loads, s);
  std::vector<int64_t> host_rows;
  for (auto x : placed->on_host)
    host_rows.push_back(offsets[x + 1] - offsets[x]);
  const auto split = plan_split(*cache_, *slots_, placed->on_host, host_rows,
                                placed->admissions, cfg_.intermediate_size);
  std::vector<cuda::moe_layer_runner::device_part> parts;
  if (split.units > 0) {
    ++counts.host_split;
    cuda::expert_layer part;
    counts.loaded_bytes
      += slots_->copy_part(l, split.expert, split.units, s, part);
    parts.push_back({offsets[split.expert],
                     offsets[split.expert + 1] - offsets[split.expert], part});
  }
  counts.loaded_bytes += slots_->copy(placed->admissions, s);
  // The device's experts wait for the latest copy into each of their slots
  // (a miss's, or one staged or admitted earlier still on its way).
  slots_->wait_for(placed->slot_of, s);
  if (!parts.empty())
    slots_->wait_for_part(s);
  // The host's experts, while those copies run.
  if (!placed->on_host.empty())
    compute_on_host(l, placed->on_host, offsets, grouped_pairs, split);
  moe_->set_device_parts(std::move(parts));
  CUDA_CHECK(cudaEventRecord(ready_ev_[layer]->get(), s));
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
                                    ready_ev_[l]->get()));
    if (ms > 0)
      cache_step_[l].stall_seconds += ms / 1e3;
  }
}

} // namespace volt
