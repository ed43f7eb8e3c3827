#include "actors/cuda_expert.hpp"

#include "actors/unexpected_messages.hpp"
#include "base/error.hpp"

#ifdef VOLT_HAVE_CUDA

#  include <algorithm>
#  include <cstring>
#  include <vector>

#  include "actors/expert.hpp"
#  include "caf/event_based_actor.hpp"
#  include "caf/typed_event_based_actor.hpp"
#  include "gpu/cuda/device_buffer.hpp"
#  include "gpu/cuda/expert_ffn.cuh"
#  include "gpu/cuda/permute.cuh"

namespace volt {

namespace {

/// Below this many input bytes a batch is copied to the device at once;
/// above, group by group so that narrowing overlaps the copies (prefill).
constexpr size_t chunked_copy_min_bytes = size_t{1} << 20;

/// Device resources of one CUDA expert actor. Built on the spawning thread,
/// then used only by the actor's own (detached) thread.
class cuda_expert_state {
public:
  cuda_expert_state(std::shared_ptr<const expert_weights> weights, int device,
                    weight_quantization quantization)
    : weights_(std::move(weights)), device_(device) {
    CUDA_CHECK(cudaSetDevice(device_));
    compute_ = std::make_unique<cuda::stream>();
    copy_ = std::make_unique<cuda::stream>();
    CUBLAS_CHECK(cublasCreate(&cublas_));
    upload(quantization);
  }

  cuda_expert_state(const cuda_expert_state&) = delete;
  cuda_expert_state& operator=(const cuda_expert_state&) = delete;

  ~cuda_expert_state() {
    cudaSetDevice(device_);
    if (cublas_ != nullptr)
      cublasDestroy(cublas_);
  }

  const expert_weights& weights() const {
    return *weights_;
  }

  /// Runs a checked batch: rows f32 [n, hidden] in, f32 [n, hidden] out.
  wire_tensor run(const expert_batch& batch);

private:
  void upload(weight_quantization quantization);

  std::shared_ptr<const expert_weights> weights_;
  int device_;
  std::unique_ptr<cuda::stream> compute_;
  std::unique_ptr<cuda::stream> copy_;
  cublasHandle_t cublas_ = nullptr;
  std::vector<cuda::device_buffer> layer_memory_;
  std::vector<cuda::expert_layer> layers_;
  std::vector<int32_t> slot_of_id_;
  // Per-batch buffers, grown on demand.
  cuda::pinned_buffer in_host_, out_host_, groups_host_;
  cuda::device_buffer in_dev_, rows_dev_, groups_dev_, workspace_, y_dev_,
    out_dev_;
  std::vector<std::unique_ptr<cuda::event>> chunk_done_;
};

void cuda_expert_state::upload(weight_quantization quantization) {
  const auto& cfg = weights_->config();
  const auto& ids = weights_->ids();
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t hidden = cfg.hidden_size;
  const int64_t ffn = cfg.intermediate_size;
  slot_of_id_.assign(static_cast<size_t>(cfg.num_local_experts), -1);
  for (size_t i = 0; i < ids.size(); ++i)
    slot_of_id_[ids[i]] = static_cast<int32_t>(i);
  std::shared_ptr<const int8_expert_weights> q;
  if (quantization == weight_quantization::int8)
    q = int8_expert_weights::quantize(*weights_);
  const bool int8 = q != nullptr;
  const size_t elem = int8 ? 1 : 2;
  const size_t w13_bytes = elem * 2 * ffn * hidden;
  const size_t w2_bytes = elem * hidden * ffn;
  const size_t scale_bytes = int8 ? sizeof(float) * (2 * ffn + hidden) : 0;
  const size_t expert_bytes = w13_bytes + w2_bytes + scale_bytes;
  std::vector<uint8_t> staging(expert_bytes);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    cuda::device_buffer mem(expert_bytes * n);
    auto* base = mem.get<uint8_t>();
    cuda::expert_layer layer;
    layer.format = int8 ? cuda::weight_format::int8 : cuda::weight_format::bf16;
    layer.n_experts = n;
    layer.hidden = hidden;
    layer.ffn = ffn;
    // Layout: [w13 of every expert | w2 of every expert | s13 | s2].
    layer.w13 = base;
    layer.w2 = base + w13_bytes * n;
    if (int8) {
      layer.s13
        = reinterpret_cast<const float*>(base + (w13_bytes + w2_bytes) * n);
      layer.s2 = layer.s13 + 2 * ffn * n;
    }
    for (int64_t i = 0; i < n; ++i) {
      auto id = ids[static_cast<size_t>(i)];
      auto* w13_dst = base + w13_bytes * i;
      auto* w2_dst = base + w13_bytes * n + w2_bytes * i;
      if (int8) {
        const auto* e = q->find(l, id);
        std::memcpy(staging.data(), e->w1.q.data(), e->w1.q.size());
        std::memcpy(staging.data() + e->w1.q.size(), e->w3.q.data(),
                    e->w3.q.size());
        CUDA_CHECK(cudaMemcpy(w13_dst, staging.data(), w13_bytes,
                              cudaMemcpyHostToDevice));
        CUDA_CHECK(
          cudaMemcpy(w2_dst, e->w2.q.data(), w2_bytes, cudaMemcpyHostToDevice));
        auto* s13 = const_cast<float*>(layer.s13) + 2 * ffn * i;
        CUDA_CHECK(cudaMemcpy(s13, e->w1.scales.data(), sizeof(float) * ffn,
                              cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(s13 + ffn, e->w3.scales.data(),
                              sizeof(float) * ffn, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(const_cast<float*>(layer.s2) + hidden * i,
                              e->w2.scales.data(), sizeof(float) * hidden,
                              cudaMemcpyHostToDevice));
      } else {
        const auto* e = weights_->find(l, id);
        auto* dst = reinterpret_cast<uint16_t*>(staging.data());
        auto narrow = [&](const f32_tensor& t, uint16_t* out) {
          for (int64_t j = 0; j < t.numel(); ++j)
            out[j] = f32_to_bf16(t.data[j]);
        };
        narrow(e->w1, dst);
        narrow(e->w3, dst + ffn * hidden);
        CUDA_CHECK(cudaMemcpy(w13_dst, dst, w13_bytes, cudaMemcpyHostToDevice));
        narrow(e->w2, dst);
        CUDA_CHECK(cudaMemcpy(w2_dst, dst, w2_bytes, cudaMemcpyHostToDevice));
      }
    }
    layers_.push_back(layer);
    layer_memory_.push_back(std::move(mem));
  }
}

wire_tensor cuda_expert_state::run(const expert_batch& batch) {
  CUDA_CHECK(cudaSetDevice(device_));
  const auto& layer = layers_[batch.layer];
  const int64_t hidden = layer.hidden;
  const int64_t groups = static_cast<int64_t>(batch.expert_ids.size());
  std::vector<int32_t> offsets(static_cast<size_t>(groups + 1), 0);
  int64_t max_rows = 0;
  for (int64_t g = 0; g < groups; ++g) {
    offsets[g + 1] = offsets[g] + static_cast<int32_t>(batch.row_counts[g]);
    max_rows = std::max<int64_t>(max_rows, batch.row_counts[g]);
  }
  const int64_t n_rows = offsets[groups];
  std::vector<float> out(static_cast<size_t>(n_rows * hidden));
  if (n_rows == 0)
    return pack_f32(out.data(), batch.rows.shape);
  const size_t in_bytes = sizeof(float) * n_rows * hidden;
  // Host side: the payload into pinned memory; group table after it.
  in_host_.reserve(in_bytes);
  std::memcpy(in_host_.get(), batch.rows.bytes.data(), in_bytes);
  groups_host_.reserve(sizeof(int32_t) * (2 * groups + 1));
  auto* g_host = groups_host_.get<int32_t>();
  for (int64_t g = 0; g < groups; ++g)
    g_host[g] = slot_of_id_[batch.expert_ids[g]];
  std::copy(offsets.begin(), offsets.end(), g_host + groups);
  in_dev_.reserve(in_bytes);
  rows_dev_.reserve(sizeof(__nv_bfloat16) * n_rows * hidden);
  groups_dev_.reserve(sizeof(int32_t) * (2 * groups + 1));
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
  CUDA_CHECK(cudaStreamSynchronize(cs));
  return pack_f32(out_host_.get<float>(), batch.rows.shape);
}

expert_actor::behavior_type cuda_expert(expert_actor::pointer self,
                                        std::shared_ptr<cuda_expert_state> st) {
  drop_unexpected_messages(self);
  return {
    [st](const expert_batch& batch) -> caf::result<wire_tensor> {
      if (auto err = check_expert_batch(st->weights(), batch))
        return err;
      try {
        return st->run(batch);
      } catch (const std::exception& ex) {
        return make_volt_error(volt_errc::internal,
                               std::string{"cuda expert: "} + ex.what());
      }
    },
    [st](hosted_atom) { return hello_of(st->weights()); },
  };
}

} // namespace

caf::expected<expert_actor>
spawn_cuda_expert(caf::actor_system& sys,
                  std::shared_ptr<const expert_weights> weights, int device,
                  weight_quantization quantization, const std::string& origin) {
  auto fail = [device, &origin](const std::string& why) {
    return make_volt_error(volt_errc::invalid_config,
                           origin + " cuda:" + std::to_string(device) + ": "
                             + why);
  };
  int count = 0;
  if (auto status = cudaGetDeviceCount(&count); status != cudaSuccess)
    return fail(std::string{"no usable CUDA device ("}
                + cudaGetErrorString(status) + ")");
  if (device < 0 || device >= count)
    return fail("no such device (" + std::to_string(count)
                + " CUDA devices found)");
  cuda::expert_layer shape;
  shape.hidden = weights->config().hidden_size;
  shape.ffn = weights->config().intermediate_size;
  if (auto why = cuda::expert_ffn_unsupported(shape))
    return fail(why);
  try {
    auto st = std::make_shared<cuda_expert_state>(std::move(weights), device,
                                                  quantization);
    return sys.spawn<caf::detached>(cuda_expert, std::move(st));
  } catch (const std::exception& ex) {
    return make_volt_error(volt_errc::internal,
                           std::string{"cuda expert: "} + ex.what());
  }
}

} // namespace volt

#else // VOLT_HAVE_CUDA

namespace volt {

caf::expected<expert_actor>
spawn_cuda_expert(caf::actor_system&, std::shared_ptr<const expert_weights>,
                  int device, weight_quantization, const std::string& origin) {
  return make_volt_error(volt_errc::invalid_config,
                         "volt-node was built without CUDA; " + origin
                           + " cuda:" + std::to_string(device)
                           + " needs a CUDA build");
}

} // namespace volt

#endif // VOLT_HAVE_CUDA
