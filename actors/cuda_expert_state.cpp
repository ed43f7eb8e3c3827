// A worker's CUDA experts. Without a cache every hosted expert is on the
// device. With one ([worker] gpu_expert_slots) they wait in pinned host
// memory and each batch makes its experts resident first: expert_slot_cache
// decides which slots they take (or, for bf16 where the host is quicker for
// the rows at hand, that the host computes them from the pinned copy while
// the device runs the others). The router's hint for the next layer
// (expert_batch::stage_next) is copied in behind the batch's work, while the
// answer travels back and the router runs the next layer's attention.

#include "actors/cuda_expert_state.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "base/error.hpp"
#include "gpu/cpu/cpu_ops.hpp"
#include "gpu/cuda/cuda_check.hpp"
#include "gpu/cuda/permute.cuh"
#include "net/metrics.hpp"

namespace volt {

namespace {

/// Below this many input bytes a batch is copied to the device at once;
/// above, group by group so that narrowing overlaps the copies (prefill).
constexpr size_t chunked_copy_min_bytes = size_t{1} << 20;

} // namespace

cuda_expert_state::cuda_expert_state(hosted_experts hosted,
                                     cuda_model_weights weights,
                                     const cuda_expert_options& options,
                                     std::unique_ptr<expert_slot_cache> cache)
  : hosted_(std::move(hosted)), weights_(std::move(weights)),
    device_(options.device), cache_(std::move(cache)),
    metrics_(options.metrics) {
  CUDA_CHECK(cudaSetDevice(device_));
  compute_ = std::make_unique<cuda::stream>();
  copy_ = std::make_unique<cuda::stream>();
  CUBLAS_CHECK(cublasCreate(&cublas_));
  for (const auto& lw : weights_.layers)
    layers_.push_back(lw.experts);
  if (!cache_)
    return;
  const bool host_misses
    = host_takes_misses(layers_.front().format, options.misses);
  slots_ = std::make_unique<cuda_expert_slots>(layers_, cache_->slots(),
                                               host_misses);
  wait_begin_ = std::make_unique<cuda::event>(true);
  wait_end_ = std::make_unique<cuda::event>(true);
  work_done_ = std::make_unique<cuda::event>(true);
  if (host_misses)
    let_host_take_misses(*cache_, *slots_, compute_->get(), options.misses,
                         "worker");
}

cuda_expert_state::~cuda_expert_state() {
  cudaSetDevice(device_);
  if (cublas_ != nullptr)
    cublasDestroy(cublas_);
}

std::vector<int32_t>
cuda_expert_state::admit(const expert_batch& batch,
                         const std::vector<int32_t>& offsets,
                         std::vector<int64_t>& host_groups) {
  std::vector<uint32_t> needed;
  for (auto id : batch.expert_ids)
    needed.push_back(static_cast<uint32_t>(index_of(id)));
  std::sort(needed.begin(), needed.end());
  needed.erase(std::unique(needed.begin(), needed.end()), needed.end());
  cache_->observe(batch.layer, needed);
  auto placed = cache_->admit(batch.layer, needed,
                              slots_->backlog_seconds() > 0);
  if (!placed)
    throw std::runtime_error(describe(placed.error()));
  auto cs = compute_->get();
  // The copies waited for first: the background ones queue behind them.
  counts_ = expert_cache_layer{};
  counts_.hits = placed->hits;
  counts_.misses
    = static_cast<int64_t>(placed->loads.size() + placed->on_host.size());
  counts_.host_computed = static_cast<int64_t>(placed->on_host.size());
  counts_.loaded_bytes = slots_->copy(placed->loads, cs);
  std::vector<int32_t> slot_of_group;
  for (size_t g = 0; g < batch.expert_ids.size(); ++g) {
    auto slot = placed->slot_of[static_cast<size_t>(
      index_of(batch.expert_ids[g]))];
    slot_of_group.push_back(slot);
    if (slot < 0)
      host_groups.push_back(static_cast<int64_t>(g));
  }
  // The device's part of one host group (plan_split), copied before the
  // background copies, while the bus would otherwise finish first.
  std::vector<uint32_t> host_experts;
  std::vector<int64_t> host_rows;
  for (auto g : host_groups) {
    host_experts.push_back(static_cast<uint32_t>(
      index_of(batch.expert_ids[static_cast<size_t>(g)])));
    host_rows.push_back(offsets[static_cast<size_t>(g) + 1]
                        - offsets[static_cast<size_t>(g)]);
  }
  const auto split = plan_split(*cache_, *slots_, host_experts, host_rows,
                                placed->admissions, layers_.front().ffn);
  split_group_ = split.units > 0 ? host_groups[split.index] : -1;
  split_units_ = split.units;
  if (split.units > 0) {
    counts_.loaded_bytes
      += slots_->copy_part(batch.layer, split.expert, split.units, cs, part_);
    counts_.host_split = 1;
  }
  counts_.loaded_bytes += slots_->copy(placed->admissions, cs);
  waited_slots_ = std::move(placed->slot_of);
  return slot_of_group;
}

void cuda_expert_state::compute_on_host(const expert_batch& batch,
                                        const std::vector<int32_t>& offsets,
                                        const std::vector<int64_t>& host_groups,
                                        float* out) {
  const auto h = layers_.front().hidden;
  const auto ffn = layers_.front().ffn;
  const auto& src = slots_->host_layer(batch.layer);
  const auto* w13 = static_cast<const uint16_t*>(src.w13);
  const auto* w2 = static_cast<const uint16_t*>(src.w2);
  for (auto g : host_groups) {
    const int64_t first = offsets[static_cast<size_t>(g)];
    const int64_t count = offsets[static_cast<size_t>(g) + 1] - first;
    const auto e = index_of(batch.expert_ids[static_cast<size_t>(g)]);
    host_in_.resize(static_cast<size_t>(count * h));
    std::memcpy(host_in_.data(), batch.rows.bytes.data() + sizeof(float) * first * h,
                sizeof(float) * count * h);
    // The device's experts read their input narrowed to bf16.
    cpu::round_to_bf16(host_in_.data(), count * h);
    host_scratch_.resize(static_cast<size_t>(2 * count * ffn));
    const int64_t from = g == split_group_ ? split_units_ : 0;
    cpu::swiglu_expert_bf16_part(host_in_.data(), w13 + e * 2 * ffn * h,
                                 w2 + e * h * ffn, count, h, ffn, from, ffn,
                                 host_scratch_.data(), out + first * h);
  }
}

void cuda_expert_state::enqueue_part(const std::vector<int32_t>& offsets,
                                     int64_t groups) {
  auto cs = compute_->get();
  const auto hidden = part_.hidden;
  const auto g = static_cast<size_t>(split_group_);
  const int64_t first = offsets[g];
  const int64_t count = offsets[g + 1] - first;
  const auto splits
    = cuda::expert_ffn_splits(part_, cuda::choose_ffn_path(part_, count));
  part_y_.reserve(sizeof(float) * splits * count * hidden);
  part_out_.reserve(sizeof(float) * count * hidden);
  part_out_host_.reserve(sizeof(float) * count * hidden);
  slots_->wait_for_part(cs);
  // Its one-group table goes after the batch's.
  cuda::expert_ffn_single(
    part_, rows_dev_.get<__nv_bfloat16>() + first * hidden, count,
    groups_host_.get<int32_t>() + 2 * groups + 1,
    groups_dev_.get<int32_t>() + 2 * groups + 1, workspace_.get(),
    workspace_.bytes(), part_y_.get<float>(), cublas_, cs);
  cuda::sum_splits(part_y_.get<float>(), splits, count, hidden,
                   part_out_.get<float>(), cs);
  CUDA_CHECK(cudaMemcpyAsync(part_out_host_.get(), part_out_.get(),
                             sizeof(float) * count * hidden,
                             cudaMemcpyDeviceToHost, cs));
}

void cuda_expert_state::stage_next(const expert_batch& batch) {
  const int64_t next = static_cast<int64_t>(batch.layer) + 1;
  if (batch.stage_next.empty() || next >= static_cast<int64_t>(layers_.size()))
    return;
  std::vector<uint32_t> want;
  for (auto id : batch.stage_next)
    if (index_of(id) >= 0)
      want.push_back(static_cast<uint32_t>(index_of(id)));
  if (want.empty())
    return;
  cache_->set_ranked(next, want);
  expert_cache_layer staged;
  staged.staged_bytes = slots_->copy(cache_->stage(next, want), compute_->get());
  if (metrics_ && staged.staged_bytes > 0)
    metrics_->expert_cache_layer_counts(next, staged);
}

wire_tensor cuda_expert_state::run(const expert_batch& batch) {
  using clock = std::chrono::steady_clock;
  CUDA_CHECK(cudaSetDevice(device_));
  const auto& layer = cache_ ? slots_->slot_layer() : layers_[batch.layer];
  const int64_t hidden = layer.hidden;
  const int64_t groups = static_cast<int64_t>(batch.expert_ids.size());
  std::vector<int32_t> offsets(static_cast<size_t>(groups + 1), 0);
  int64_t max_rows = 0;
  for (int64_t g = 0; g < groups; ++g) {
    offsets[g + 1] = offsets[g] + static_cast<int32_t>(batch.row_counts[g]);
    max_rows = std::max<int64_t>(max_rows, batch.row_counts[g]);
  }
  const int64_t n_rows = offsets[groups];
  if (n_rows == 0) {
    const float none = 0;
    return pack_f32(&none, batch.rows.shape);
  }
  // With a cache the copies start first; the input's copy overlaps them.
  std::vector<int64_t> host_groups;
  std::vector<int32_t> expert_of_group;
  if (cache_) {
    expert_of_group = admit(batch, offsets, host_groups);
  } else {
    for (auto id : batch.expert_ids)
      expert_of_group.push_back(index_of(id));
  }
  const size_t in_bytes = sizeof(float) * n_rows * hidden;
  // Host side: the payload into pinned memory; group table after it.
  in_host_.reserve(in_bytes);
  std::memcpy(in_host_.get(), batch.rows.bytes.data(), in_bytes);
  // The group table, then a split expert's part's own (three more).
  groups_host_.reserve(sizeof(int32_t) * (2 * groups + 4));
  auto* g_host = groups_host_.get<int32_t>();
  std::copy(expert_of_group.begin(), expert_of_group.end(), g_host);
  std::copy(offsets.begin(), offsets.end(), g_host + groups);
  in_dev_.reserve(in_bytes);
  rows_dev_.reserve(sizeof(__nv_bfloat16) * n_rows * hidden);
  groups_dev_.reserve(sizeof(int32_t) * (2 * groups + 4));
  auto path = cuda::choose_ffn_path(layer, max_rows);
  workspace_.reserve(cuda::expert_ffn_workspace_bytes(layer, n_rows));
  auto splits = cuda::expert_ffn_splits(layer, path);
  y_dev_.reserve(sizeof(float) * splits * n_rows * hidden);
  out_dev_.reserve(in_bytes);
  out_host_.reserve(in_bytes);
  auto cs = compute_->get();
  CUDA_CHECK(cudaMemcpyAsync(groups_dev_.get(), g_host,
                             sizeof(int32_t) * (2 * groups + 1),
                             cudaMemcpyHostToDevice, cs));
  // Narrows rows [begin, begin + count) of in_dev_ (floats) on `cs`: to f16
  // for the int8 decode kernels, else to bf16.
  auto narrow = [&](size_t begin, size_t count) {
    if (cuda::decode_takes_f16(layer, path))
      cuda::f32_to_f16(in_dev_.get<float>() + begin,
                       static_cast<int64_t>(count),
                       rows_dev_.get<__half>() + begin, cs);
    else
      cuda::f32_to_bf16(in_dev_.get<float>() + begin,
                        static_cast<int64_t>(count),
                        rows_dev_.get<__nv_bfloat16>() + begin, cs);
  };
  if (in_bytes < chunked_copy_min_bytes || groups < 2) {
    // Decode-sized rows (kilobytes): one copy and one conversion. Copying
    // group by group costs four calls per group and overlaps nothing here.
    CUDA_CHECK(cudaMemcpyAsync(in_dev_.get(), in_host_.get(), in_bytes,
                               cudaMemcpyHostToDevice, cs));
    narrow(0, static_cast<size_t>(n_rows * hidden));
  } else {
    // Large batches (prefill): copy group by group on the copy stream; the
    // compute stream narrows each chunk as soon as it lands, overlapping the
    // next chunk's copy.
    while (chunk_done_.size() < static_cast<size_t>(groups))
      chunk_done_.push_back(std::make_unique<cuda::event>());
    for (int64_t g = 0; g < groups; ++g) {
      auto begin = static_cast<size_t>(offsets[g]) * hidden;
      auto count = static_cast<size_t>(offsets[g + 1] - offsets[g]) * hidden;
      if (count == 0)
        continue;
      CUDA_CHECK(cudaMemcpyAsync(
        in_dev_.get<float>() + begin, in_host_.get<float>() + begin,
        sizeof(float) * count, cudaMemcpyHostToDevice, copy_->get()));
      CUDA_CHECK(cudaEventRecord(chunk_done_[g]->get(), copy_->get()));
      CUDA_CHECK(cudaStreamWaitEvent(cs, chunk_done_[g]->get(), 0));
      narrow(begin, count);
    }
  }
  if (cache_) {
    // The experts wait for the latest copy into each of their slots.
    CUDA_CHECK(cudaEventRecord(wait_begin_->get(), cs));
    slots_->wait_for(waited_slots_, cs);
    CUDA_CHECK(cudaEventRecord(wait_end_->get(), cs));
  }
  cuda::ffn_groups fg;
  fg.n_groups = groups;
  fg.expert = groups_dev_.get<int32_t>();
  fg.offsets = groups_dev_.get<int32_t>() + groups;
  fg.host_expert = g_host;
  fg.host_offsets = g_host + groups;
  cuda::expert_ffn(layer, fg, rows_dev_.get(), n_rows, max_rows, path,
                   workspace_.get(), workspace_.bytes(), y_dev_.get<float>(),
                   cublas_, cs);
  cuda::sum_splits(y_dev_.get<float>(), splits, n_rows, hidden,
                   out_dev_.get<float>(), cs);
  CUDA_CHECK(cudaMemcpyAsync(out_host_.get(), out_dev_.get(), in_bytes,
                             cudaMemcpyDeviceToHost, cs));
  if (!cache_) {
    CUDA_CHECK(cudaStreamSynchronize(cs));
    return pack_f32(out_host_.get<float>(), batch.rows.shape);
  }
  if (split_group_ >= 0)
    enqueue_part(offsets, groups);
  CUDA_CHECK(cudaEventRecord(work_done_->get(), cs));
  stage_next(batch);
  // The host's experts while the device runs the others.
  const auto host_start = clock::now();
  host_out_.resize(static_cast<size_t>(n_rows * hidden));
  compute_on_host(batch, offsets, host_groups, host_out_.data());
  const double host_seconds
    = host_groups.empty()
        ? 0.0
        : std::chrono::duration<double>(clock::now() - host_start).count();
  CUDA_CHECK(cudaStreamSynchronize(cs));
  auto* result = out_host_.get<float>();
  for (auto g : host_groups) {
    const auto first = static_cast<size_t>(offsets[static_cast<size_t>(g)]);
    const auto count
      = static_cast<size_t>(offsets[static_cast<size_t>(g) + 1]) - first;
    auto* rows = host_out_.data() + first * hidden;
    // The split group: the host's part plus the device's.
    if (g == split_group_) {
      const auto* part = part_out_host_.get<float>();
      for (size_t i = 0; i < count * hidden; ++i)
        rows[i] += part[i];
    }
    std::copy_n(rows, count * hidden, result + first * hidden);
  }
  // The stall: how much later the answer is than with every expert
  // resident: the device's wait for its copies, or the host's experts
  // where they finish after the device's.
  float wait_ms = 0, work_ms = 0;
  CUDA_CHECK(
    cudaEventElapsedTime(&wait_ms, wait_begin_->get(), wait_end_->get()));
  CUDA_CHECK(
    cudaEventElapsedTime(&work_ms, wait_end_->get(), work_done_->get()));
  counts_.stall_seconds
    = std::max({0.0, wait_ms / 1e3, host_seconds - work_ms / 1e3});
  if (metrics_)
    metrics_->expert_cache_layer_counts(batch.layer, counts_);
  return pack_f32(result, batch.rows.shape);
}

} // namespace volt
