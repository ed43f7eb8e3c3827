#include "model/cuda_expert_slots.hpp"

#include <algorithm>
#include <chrono>

#include "base/log.hpp"
#include "gpu/cpu/cpu_ops.hpp"
#include "gpu/cpu/parallel.hpp"
#include "gpu/cuda/cuda_check.hpp"

namespace volt {

cuda_expert_slots::cuda_expert_slots(
  std::vector<cuda::expert_layer> host_layers, int64_t slots,
  bool part_buffer)
  : host_layers_(std::move(host_layers)) {
  const auto& first = host_layers_.front();
  const bool int8 = first.format == cuda::weight_format::int8;
  const size_t elem = int8 ? 1 : 2;
  const auto h = static_cast<size_t>(first.hidden);
  const auto ffn = static_cast<size_t>(first.ffn);
  const auto n = static_cast<size_t>(slots);
  w13_.resize(elem * n * 2 * ffn * h);
  w2_.resize(elem * n * h * ffn);
  // n_experts stays the layer's: the MoE runner plans a group per expert
  // and maps groups to slots.
  slot_layer_ = first;
  slot_layer_.w13 = w13_.get();
  slot_layer_.w2 = w2_.get();
  if (int8) {
    s13_.resize(sizeof(float) * n * 2 * ffn);
    s2_.resize(sizeof(float) * n * h);
    slot_layer_.s13 = s13_.get<float>();
    slot_layer_.s2 = s2_.get<float>();
  }
  copy_stream_ = std::make_unique<cuda::stream>();
  after_mark_ = std::make_unique<cuda::event>();
  for (int64_t s = 0; s < slots; ++s)
    slot_ev_.push_back(std::make_unique<cuda::event>());
  if (part_buffer && !int8) {
    part_w13_.resize(elem * 2 * ffn * h);
    part_w2_.resize(elem * h * ffn);
    part_ev_ = std::make_unique<cuda::event>();
  }
}

int64_t cuda_expert_slots::copy_part(int64_t layer, uint32_t expert,
                                     int64_t units, cudaStream_t after,
                                     cuda::expert_layer& part) {
  auto cs = copy_stream_->get();
  CUDA_CHECK(cudaEventRecord(after_mark_->get(), after));
  CUDA_CHECK(cudaStreamWaitEvent(cs, after_mark_->get(), 0));
  const auto& src = host_layers_[static_cast<size_t>(layer)];
  const auto h = static_cast<size_t>(src.hidden);
  const auto ffn = static_cast<size_t>(src.ffn);
  const auto a = static_cast<size_t>(units);
  const size_t elem = sizeof(uint16_t);
  const auto* w13 = static_cast<const char*>(src.w13) + elem * expert * 2 * ffn * h;
  const auto* w2 = static_cast<const char*>(src.w2) + elem * expert * h * ffn;
  auto* dst13 = part_w13_.get<char>();
  // w1's rows [0, a), then w3's: the part's own w13.
  CUDA_CHECK(cudaMemcpyAsync(dst13, w13, elem * a * h, cudaMemcpyHostToDevice,
                             cs));
  CUDA_CHECK(cudaMemcpyAsync(dst13 + elem * a * h, w13 + elem * ffn * h,
                             elem * a * h, cudaMemcpyHostToDevice, cs));
  // w2's columns [0, a) of each of its h rows.
  CUDA_CHECK(cudaMemcpy2DAsync(part_w2_.get(), elem * a, w2, elem * ffn,
                               elem * a, h, cudaMemcpyHostToDevice, cs));
  CUDA_CHECK(cudaEventRecord(part_ev_->get(), cs));
  part_layer_ = layer;
  part_expert_ = expert;
  part_units_ = units;
  part = src;
  part.n_experts = 1;
  part.ffn = units;
  part.w13 = part_w13_.get();
  part.w2 = part_w2_.get();
  const auto bytes = static_cast<int64_t>(elem * 3 * a * h);
  enqueued(bytes);
  return bytes;
}

void cuda_expert_slots::wait_for_part(cudaStream_t s) const {
  CUDA_CHECK(cudaStreamWaitEvent(s, part_ev_->get(), 0));
}

int64_t cuda_expert_slots::copy_around_part(const expert_slot_cache::load& ld,
                                            cudaStream_t cs) {
  const auto& src = host_layers_[static_cast<size_t>(ld.layer)];
  const auto h = static_cast<size_t>(src.hidden);
  const auto ffn = static_cast<size_t>(src.ffn);
  const auto a = static_cast<size_t>(part_units_);
  const size_t elem = sizeof(uint16_t);
  const auto slot = static_cast<size_t>(ld.slot);
  const auto* w13 = static_cast<const char*>(src.w13) + elem * ld.expert * 2 * ffn * h;
  const auto* w2 = static_cast<const char*>(src.w2) + elem * ld.expert * h * ffn;
  auto* d13 = w13_.get<char>() + elem * slot * 2 * ffn * h;
  auto* d2 = w2_.get<char>() + elem * slot * h * ffn;
  const auto* p13 = part_w13_.get<char>();
  // w1's rows [0, a) and w3's rows [0, a) from the part (its w13 holds
  // them back to back); the copy stream already ordered the part before.
  CUDA_CHECK(cudaMemcpyAsync(d13, p13, elem * a * h, cudaMemcpyDeviceToDevice,
                             cs));
  CUDA_CHECK(cudaMemcpyAsync(d13 + elem * ffn * h, p13 + elem * a * h,
                             elem * a * h, cudaMemcpyDeviceToDevice, cs));
  CUDA_CHECK(cudaMemcpy2DAsync(d2, elem * ffn, part_w2_.get(), elem * a,
                               elem * a, h, cudaMemcpyDeviceToDevice, cs));
  // The rest from the host: w1's and w3's rows [a, ffn), w2's columns.
  const size_t rest = elem * (ffn - a) * h;
  CUDA_CHECK(cudaMemcpyAsync(d13 + elem * a * h, w13 + elem * a * h, rest,
                             cudaMemcpyHostToDevice, cs));
  CUDA_CHECK(cudaMemcpyAsync(d13 + elem * (ffn + a) * h,
                             w13 + elem * (ffn + a) * h, rest,
                             cudaMemcpyHostToDevice, cs));
  if (a < ffn)
    CUDA_CHECK(cudaMemcpy2DAsync(d2 + elem * a, elem * ffn, w2 + elem * a,
                                 elem * ffn, elem * (ffn - a), h,
                                 cudaMemcpyHostToDevice, cs));
  return static_cast<int64_t>(3 * rest);
}

void cuda_expert_slots::enqueued(int64_t bytes) {
  const auto now = std::chrono::steady_clock::now();
  bus_free_ = std::max(bus_free_, now)
              + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                std::chrono::duration<double>(static_cast<double>(bytes)
                                              * seconds_per_byte_));
}

double cuda_expert_slots::backlog_seconds() const {
  const auto left = bus_free_ - std::chrono::steady_clock::now();
  return std::max(0.0, std::chrono::duration<double>(left).count());
}

int64_t cuda_expert_slots::copy(
  const std::vector<expert_slot_cache::load>& loads, cudaStream_t after) {
  if (loads.empty())
    return 0;
  auto cs = copy_stream_->get();
  CUDA_CHECK(cudaEventRecord(after_mark_->get(), after));
  CUDA_CHECK(cudaStreamWaitEvent(cs, after_mark_->get(), 0));
  const bool int8 = slot_layer_.format == cuda::weight_format::int8;
  const size_t elem = int8 ? 1 : 2;
  const auto h = static_cast<size_t>(slot_layer_.hidden);
  const auto ffn = static_cast<size_t>(slot_layer_.ffn);
  const size_t w13 = elem * 2 * ffn * h;
  const size_t w2 = elem * h * ffn;
  const size_t s13 = sizeof(float) * 2 * ffn;
  const size_t s2 = sizeof(float) * h;
  int64_t bytes = 0;
  auto one = [&](const void* base, size_t stride, uint32_t expert, void* dst,
                 int32_t slot) {
    CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + stride * slot,
                               static_cast<const char*>(base) + stride * expert,
                               stride, cudaMemcpyHostToDevice, cs));
    bytes += static_cast<int64_t>(stride);
  };
  for (const auto& ld : loads) {
    if (!int8 && part_units_ > 0 && ld.layer == part_layer_
        && ld.expert == part_expert_) {
      bytes += copy_around_part(ld, cs);
      CUDA_CHECK(
        cudaEventRecord(slot_ev_[static_cast<size_t>(ld.slot)]->get(), cs));
      continue;
    }
    const auto& src = host_layers_[static_cast<size_t>(ld.layer)];
    one(src.w13, w13, ld.expert, w13_.get(), ld.slot);
    one(src.w2, w2, ld.expert, w2_.get(), ld.slot);
    if (int8) {
      one(src.s13, s13, ld.expert, s13_.get(), ld.slot);
      one(src.s2, s2, ld.expert, s2_.get(), ld.slot);
    }
    // What a kernel that reads the slot waits for.
    CUDA_CHECK(
      cudaEventRecord(slot_ev_[static_cast<size_t>(ld.slot)]->get(), cs));
  }
  enqueued(bytes);
  return bytes;
}

void cuda_expert_slots::wait_for(const std::vector<int32_t>& slot_of,
                                 cudaStream_t s) const {
  for (auto slot : slot_of)
    if (slot >= 0)
      CUDA_CHECK(cudaStreamWaitEvent(
        s, slot_ev_[static_cast<size_t>(slot)]->get(), 0));
}

double cuda_expert_slots::time_copy(cudaStream_t after) {
  using clock = std::chrono::steady_clock;
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    auto t0 = clock::now();
    (void)copy({expert_slot_cache::load{0, 0, 0}}, after);
    CUDA_CHECK(cudaStreamSynchronize(copy_stream_->get()));
    best = std::min(best,
                    std::chrono::duration<double>(clock::now() - t0).count());
  }
  seconds_per_byte_ = best / static_cast<double>(slot_layer_.expert_bytes());
  bus_free_ = clock::now();
  return best;
}

int64_t split_units(const expert_slot_cache& cache,
                    const cuda_expert_slots& slots, size_t on_host,
                    int64_t ffn) {
  const double copy = cache.copy_seconds();
  const double host = cache.host_seconds();
  if (on_host == 0 || copy <= 0 || host <= 0)
    return 0;
  // Experts' worth of work moved from the host to the bus.
  const double moved
    = (static_cast<double>(on_host) * host - slots.backlog_seconds())
      / (copy + host);
  return static_cast<int64_t>(std::clamp(moved, 0.0, 1.0)
                              * static_cast<double>(ffn))
         / 64 * 64;
}

host_split plan_split(const expert_slot_cache& cache,
                      const cuda_expert_slots& slots,
                      const std::vector<uint32_t>& experts,
                      const std::vector<int64_t>& rows,
                      const std::vector<expert_slot_cache::load>& admissions,
                      int64_t ffn) {
  host_split split;
  if (!slots.has_part_buffer() || experts.empty())
    return split;
  split.units = split_units(cache, slots, experts.size(), ffn);
  if (split.units == 0)
    return split;
  auto key = [&](size_t i) {
    const bool admitted
      = std::any_of(admissions.begin(), admissions.end(),
                    [&](const auto& ld) { return ld.expert == experts[i]; });
    return std::make_pair(rows[i], admitted);
  };
  for (size_t i = 1; i < experts.size(); ++i)
    if (key(split.index) < key(i))
      split.index = i;
  split.expert = experts[split.index];
  return split;
}

void let_host_take_misses(expert_slot_cache& cache, cuda_expert_slots& slots,
                          cudaStream_t after, expert_miss_mode mode,
                          const char* component) {
  using clock = std::chrono::steady_clock;
  const auto& layer = slots.host_layer(0);
  const auto h = layer.hidden;
  const auto ffn = layer.ffn;
  std::vector<float> x(static_cast<size_t>(h), 0.01f);
  std::vector<float> scratch(static_cast<size_t>(2 * ffn));
  std::vector<float> out(static_cast<size_t>(h));
  double host = 1e30;
  for (int i = 0; i < 8; ++i) {
    auto t0 = clock::now();
    cpu::swiglu_expert_bf16(x.data(), static_cast<const uint16_t*>(layer.w13),
                            static_cast<const uint16_t*>(layer.w2), 1, h, ffn,
                            scratch.data(), out.data());
    host = std::min(host,
                    std::chrono::duration<double>(clock::now() - t0).count());
  }
  const double copy = slots.time_copy(after);
  // Each layer weighs the two, so a host slower than the bus still takes
  // what shortens a wait (a second miss beside a copy).
  const bool always = mode == expert_miss_mode::host;
  cache.allow_host(copy, host, always);
  VOLT_INFO(component,
            "expert cache: a miss copies in "
              << copy * 1e3 << " ms, the host computes one row of an expert in "
              << host * 1e3 << " ms (" << cpu::compute_threads()
              << " threads): "
              << (always ? "every miss runs on the host"
                         : "each layer's misses go where it waits least")
              << " ([worker] expert_misses)");
}

} // namespace volt
