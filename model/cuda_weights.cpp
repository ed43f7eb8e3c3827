#include "model/cuda_weights.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include <fcntl.h>
#include <unistd.h>

#include "base/error.hpp"
#include "gpu/cpu/parallel.hpp"
#include "gpu/cuda/cuda_check.hpp"
#include "gpu/cuda/dense_ops.cuh"
#include "model/finite.hpp"
#include "model/host_memory.hpp"

namespace volt {

namespace {

/// Pinned staging slots and their size: reads fill one slot while earlier
/// slots cross PCIe and convert.
constexpr int staging_slots = 3;
constexpr size_t staging_bytes = size_t{64} << 20;

/// Bytes each reader thread takes of a chunk.
constexpr int64_t read_grain = int64_t{4} << 20;

enum class target { bf16, f32, int8 };

/// One tensor (or a stack of them) to put on the device.
struct upload {
  const tensor_info* src = nullptr;
  target kind = target::bf16;
  void* dst = nullptr;
  float* scales = nullptr; // int8: [rows]
  int64_t rows = 0;
  int64_t cols = 0;
};

/// Plans the arena: with a null base it only counts bytes; with the real
/// base it also fills the pointers of `w` and the upload list.
class layout {
public:
  explicit layout(uint8_t* base) : base_(base) {}

  template <class T>
  T* take(size_t count) {
    offset_ = (offset_ + 255) / 256 * 256;
    auto* p = base_ == nullptr ? nullptr : base_ + offset_;
    offset_ += count * sizeof(T);
    return reinterpret_cast<T*>(p);
  }

  size_t bytes() const {
    return offset_;
  }

private:
  uint8_t* base_;
  size_t offset_ = 0;
};

/// p + n, or null in the counting pass.
template <class T>
T* offset(T* p, int64_t n) {
  return p == nullptr ? nullptr : p + n;
}

/// The experts `options` ask for: their ids, or every expert's.
std::vector<uint32_t> expert_ids_of(const model_config& cfg,
                                    const cuda_load_options& options) {
  if (!options.expert_ids.empty())
    return options.expert_ids;
  std::vector<uint32_t> ids(static_cast<size_t>(cfg.num_local_experts));
  for (size_t i = 0; i < ids.size(); ++i)
    ids[i] = static_cast<uint32_t>(i);
  return ids;
}

/// Lays out the weights (see cuda_model_weights) and lists the uploads.
class planner {
public:
  planner(const checkpoint& ckpt, std::vector<upload>& uploads)
    : ckpt_(ckpt), cfg_(ckpt.config()), uploads_(uploads) {}

  /// Embeddings, final norm and LM head, in `arena`.
  void head(layout& arena, cuda_model_weights& w) {
    const int64_t h = cfg_.hidden_size;
    w.embed = arena.take<__nv_bfloat16>(cfg_.vocab_size * h);
    add("model.embed_tokens.weight", target::bf16, w.embed);
    w.final_norm = arena.take<float>(h);
    add("model.norm.weight", target::f32, w.final_norm);
    if (cfg_.tie_word_embeddings) {
      w.lm_head = w.embed;
    } else {
      w.lm_head = arena.take<__nv_bfloat16>(cfg_.vocab_size * h);
      add("lm_head.weight", target::bf16, w.lm_head);
    }
  }

  /// Layer `l`'s norms, attention and router, in `arena`.
  void dense_layer(int64_t l, layout& arena, cuda_layer_weights& lw) {
    const int64_t h = cfg_.hidden_size;
    const int64_t hd = cfg_.head_dim;
    auto bf16 = [&](size_t n) { return arena.take<__nv_bfloat16>(n); };
    auto f32 = [&](size_t n) { return arena.take<float>(n); };
    auto name = [l](const std::string& suffix) {
      return layer_tensor_name(l, suffix);
    };
    lw.input_norm = f32(h);
    add(name("input_layernorm.weight"), target::f32, lw.input_norm);
    const int64_t q_rows = cfg_.num_attention_heads * hd;
    const int64_t kv_rows = cfg_.num_key_value_heads * hd;
    auto* qkv = bf16((q_rows + 2 * kv_rows) * h);
    lw.qkv = qkv;
    add(name("self_attn.q_proj.weight"), target::bf16, qkv);
    add(name("self_attn.k_proj.weight"), target::bf16, offset(qkv, q_rows * h));
    add(name("self_attn.v_proj.weight"), target::bf16,
        offset(qkv, (q_rows + kv_rows) * h));
    lw.o_proj = bf16(h * q_rows);
    add(name("self_attn.o_proj.weight"), target::bf16, lw.o_proj);
    lw.post_norm = f32(h);
    add(name("post_attention_layernorm.weight"), target::f32, lw.post_norm);
    lw.gate = f32(cfg_.num_local_experts * h);
    add(name("block_sparse_moe.gate.weight"), target::f32, lw.gate);
  }

  /// Layer `l`'s experts `ids` in `at`: [w13 of every expert | w2 of every
  /// expert], the int8 scales after them.
  void expert_layer(int64_t l, layout& at, const std::vector<uint32_t>& ids,
                    bool int8, cuda::expert_layer& ex) {
    const int64_t h = cfg_.hidden_size;
    const int64_t ffn = cfg_.intermediate_size;
    const auto e = static_cast<int64_t>(ids.size());
    const auto kind = int8 ? target::int8 : target::bf16;
    const int64_t es = int8 ? 1 : 2;
    auto* w13 = at.take<uint8_t>(es * e * 2 * ffn * h);
    auto* w2 = at.take<uint8_t>(es * e * h * ffn);
    float* s13 = int8 ? at.take<float>(e * 2 * ffn) : nullptr;
    float* s2 = int8 ? at.take<float>(e * h) : nullptr;
    ex.w13 = w13;
    ex.w2 = w2;
    ex.s13 = s13;
    ex.s2 = s2;
    for (int64_t x = 0; x < e; ++x) {
      auto id = ids[static_cast<size_t>(x)];
      add(expert_weight_name(l, id, "w1"), kind,
          offset(w13, es * x * 2 * ffn * h), offset(s13, x * 2 * ffn));
      add(expert_weight_name(l, id, "w3"), kind,
          offset(w13, es * (x * 2 + 1) * ffn * h),
          offset(s13, x * 2 * ffn + ffn));
      add(expert_weight_name(l, id, "w2"), kind, offset(w2, es * x * h * ffn),
          offset(s2, x * h));
    }
  }

private:
  template <class T>
  void add(const std::string& name, target kind, const T* dst,
           float* scales = nullptr) {
    const auto* info = ckpt_.find(name);
    auto rows = info->shape.size() == 2 ? info->shape[0] : 1;
    auto cols = info->shape.back();
    uploads_.push_back(
      upload{info, kind, const_cast<T*>(dst), scales, rows, cols});
  }

  const checkpoint& ckpt_;
  const model_config& cfg_;
  std::vector<upload>& uploads_;
};

/// Lays out every weight `options` ask for (see cuda_model_weights) and
/// lists the uploads; with null bases it only counts bytes.
void plan(const checkpoint& ckpt, const cuda_load_options& options,
          layout& arena, layout& host_arena, cuda_model_weights& w,
          std::vector<upload>& uploads) {
  const auto& cfg = ckpt.config();
  const auto ids = expert_ids_of(cfg, options);
  const bool int8 = options.quantization == weight_quantization::int8;
  w.layers.assign(static_cast<size_t>(cfg.num_hidden_layers), {});
  for (auto& lw : w.layers) {
    auto& ex = lw.experts;
    ex.format = int8 ? cuda::weight_format::int8 : cuda::weight_format::bf16;
    ex.n_experts = static_cast<int64_t>(ids.size());
    ex.hidden = cfg.hidden_size;
    ex.ffn = cfg.intermediate_size;
  }
  // Layer by layer, as checkpoints store them: the reads go through the
  // files in order.
  planner p{ckpt, uploads};
  if (options.dense)
    p.head(arena, w);
  auto& experts_at = options.host_experts ? host_arena : arena;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    auto& lw = w.layers[static_cast<size_t>(l)];
    if (options.dense)
      p.dense_layer(l, arena, lw);
    if (options.experts)
      p.expert_layer(l, experts_at, ids, int8, lw.experts);
  }
}

/// Errors, naming the folder and the first missing tensor, unless `ckpt`
/// holds every tensor `options` ask for.
caf::error require_tensors(const checkpoint& ckpt,
                           const cuda_load_options& options) {
  const auto& cfg = ckpt.config();
  if (options.dense)
    if (auto err = ckpt.require(dense_tensor_names(cfg)))
      return err;
  if (options.experts)
    return ckpt.require(expert_tensor_names(cfg, expert_ids_of(cfg, options)));
  return caf::none;
}

} // namespace

namespace {

/// Open files by path, closed at the end of the load.
class file_set {
public:
  file_set() = default;
  file_set(const file_set&) = delete;
  file_set& operator=(const file_set&) = delete;
  ~file_set() {
    for (auto& [path, fd] : fds_)
      ::close(fd);
  }

  caf::expected<int> get(const std::string& path) {
    auto i = fds_.find(path);
    if (i != fds_.end())
      return i->second;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return make_volt_error(volt_errc::invalid_checkpoint,
                             path + ": cannot open: " + std::strerror(errno));
    fds_.emplace(path, fd);
    return fd;
  }

private:
  std::map<std::string, int> fds_;
};

/// Reads [offset, offset + n) of `fd` into `dst` with the compute threads;
/// returns an error naming `path` when the file is shorter. Each thread also
/// checks the elements it read (of `type`, while they are in its cache) for
/// NaN and infinities; `first_bad` gets the lowest such element index of the
/// chunk, or -1.
caf::error read_parallel(int fd, const std::string& path, size_t offset,
                         size_t n, uint8_t* dst, dtype type,
                         int64_t& first_bad) {
  std::atomic<bool> failed{false};
  std::atomic<int64_t> bad{INT64_MAX};
  const auto elem = dtype_size(type);
  auto parts = static_cast<int64_t>((n + read_grain - 1) / read_grain);
  cpu::parallel_for(parts, 1, [&](int64_t b, int64_t e) {
    for (auto i = b; i < e && !failed; ++i) {
      const auto start = static_cast<size_t>(i) * read_grain;
      auto at = start;
      auto left = std::min<size_t>(read_grain, n - at);
      const auto len = left;
      while (left > 0) {
        auto got = ::pread(fd, dst + at, left, static_cast<off_t>(offset + at));
        if (got <= 0) {
          if (got < 0 && errno == EINTR)
            continue;
          failed = true;
          break;
        }
        at += static_cast<size_t>(got);
        left -= static_cast<size_t>(got);
      }
      // read_grain is a multiple of every element size: parts hold whole
      // elements.
      auto hit = first_non_finite(type, dst + start, len / elem);
      auto index = hit < 0 ? INT64_MAX
                           : static_cast<int64_t>(start / elem) + hit;
      for (auto seen = bad.load(); index < seen
                                   && !bad.compare_exchange_weak(seen, index);) {
      }
    }
  });
  if (failed)
    return make_volt_error(volt_errc::invalid_checkpoint,
                           path + ": short read while loading weights (was "
                                  "the file truncated?)");
  first_bad = bad == INT64_MAX ? -1 : bad.load();
  return caf::none;
}

/// "5.2 / 11.8 GB, 3.1 GB/s, ETA 2 s" on one rewritten stderr line.
class progress_line {
public:
  progress_line(bool enabled, size_t total)
    : enabled_(enabled), total_(total),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

  void update(size_t done, bool final = false) {
    if (!enabled_)
      return;
    auto now = std::chrono::steady_clock::now();
    if (!final && now - last_ < std::chrono::milliseconds{250})
      return;
    last_ = now;
    double s = std::chrono::duration<double>(now - start_).count();
    double gbs = s > 0 ? done / s / 1e9 : 0;
    double eta = gbs > 0 ? (total_ - done) / 1e9 / gbs : 0;
    std::fprintf(stderr, "\rloading weights: %.1f / %.1f GB, %.1f GB/s, ETA %.0f s   %s",
                 done / 1e9, total_ / 1e9, gbs, eta, final ? "\n" : "");
    std::fflush(stderr);
  }

private:
  bool enabled_;
  size_t total_;
  std::chrono::steady_clock::time_point start_, last_;
};

/// One staging slot: pinned host bytes, device bytes, and the event after
/// which both are free again.
struct staging_slot {
  cuda::pinned_buffer host;
  cuda::device_buffer device;
  std::unique_ptr<cuda::event> done;
};

/// Converts `rows` staged rows of `u` (starting at `row0`) into place.
void convert(const upload& u, const void* staged, int64_t row0, int64_t rows,
             cudaStream_t stream) {
  auto n = rows * u.cols;
  auto type = u.src->type;
  switch (u.kind) {
    case target::bf16:
      cuda::to_bf16(type, staged, n,
                    static_cast<__nv_bfloat16*>(u.dst) + row0 * u.cols, stream);
      break;
    case target::f32:
      cuda::to_f32(type, staged, n, static_cast<float*>(u.dst) + row0 * u.cols,
                   stream);
      break;
    case target::int8:
      cuda::quantize_int8_rows(type, staged, rows, u.cols,
                               static_cast<int8_t*>(u.dst) + row0 * u.cols,
                               u.scales + row0, stream);
      break;
  }
}

} // namespace

caf::expected<cuda_model_weights>
load_cuda_weights(const checkpoint& ckpt, const cuda_load_options& options,
                  cudaStream_t stream) {
  auto started = std::chrono::steady_clock::now();
  if (auto err = require_tensors(ckpt, options))
    return err;
  cuda_model_weights w;
  {
    layout count{nullptr};
    layout host_count{nullptr};
    std::vector<upload> ignored;
    plan(ckpt, options, count, host_count, w, ignored);
    size_t free_bytes = 0;
    size_t total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    if (count.bytes() > free_bytes)
      return make_volt_error(
        volt_errc::invalid_config,
        options.where + ": the weights need "
          + std::to_string(count.bytes() >> 20) + " MiB on the device, "
          + std::to_string(free_bytes >> 20) + " MiB of "
          + std::to_string(total_bytes >> 20) + " MiB are free"
          + (options.quantization == weight_quantization::none
               ? " (int8 experts take half: [model] quantization = \"int8\")"
               : ""));
    w.arena.resize(count.bytes());
    w.device_bytes = count.bytes();
    if (host_count.bytes() > 0) {
      auto mem = available_host_memory();
      if (mem.available >= 0
          && host_count.bytes() > static_cast<size_t>(mem.available))
        return make_volt_error(
          volt_errc::invalid_config,
          options.where + ": the experts need "
            + std::to_string(host_count.bytes() >> 20)
            + " MiB of pinned host memory, " + std::to_string(mem.available >> 20)
            + " MiB are available (" + mem.source + ")");
      w.host_arena.reserve(host_count.bytes());
      w.host_bytes = host_count.bytes();
    }
  }
  layout arena{w.arena.get<uint8_t>()};
  layout host_arena{w.host_arena.get<uint8_t>()};
  std::vector<upload> uploads;
  plan(ckpt, options, arena, host_arena, w, uploads);
  for (const auto& u : uploads)
    w.file_bytes += u.src->nbytes;
  std::vector<staging_slot> slots(staging_slots);
  for (auto& s : slots) {
    s.host.reserve(staging_bytes);
    s.device.resize(staging_bytes);
    s.done = std::make_unique<cuda::event>();
    CUDA_CHECK(cudaEventRecord(s.done->get(), stream));
  }
  file_set files;
  progress_line progress{options.show_progress, w.file_bytes};
  size_t done = 0;
  int next_slot = 0;
  for (const auto& u : uploads) {
    auto fd = files.get(u.src->file);
    if (!fd)
      return std::move(fd.error());
    const size_t row_bytes = u.src->nbytes / static_cast<size_t>(u.rows);
    if (row_bytes > staging_bytes)
      return make_volt_error(volt_errc::invalid_checkpoint,
                             u.src->file + ": tensor '" + u.src->name
                               + "' has rows of " + std::to_string(row_bytes)
                               + " bytes; the loader stages at most "
                               + std::to_string(staging_bytes));
    const auto rows_per_chunk = static_cast<int64_t>(
      std::max<size_t>(1, staging_bytes / std::max<size_t>(row_bytes, 1)));
    for (int64_t r = 0; r < u.rows; r += rows_per_chunk) {
      auto rows = std::min(rows_per_chunk, u.rows - r);
      auto bytes = static_cast<size_t>(rows) * row_bytes;
      auto& slot = slots[static_cast<size_t>(next_slot)];
      next_slot = (next_slot + 1) % staging_slots;
      CUDA_CHECK(cudaEventSynchronize(slot.done->get()));
      int64_t bad = -1;
      if (auto err = read_parallel(*fd, u.src->file,
                                   u.src->offset + r * row_bytes, bytes,
                                   slot.host.get<uint8_t>(), u.src->type, bad))
        return err;
      if (bad >= 0) {
        float value = 0;
        convert_to_f32(u.src->type,
                       slot.host.get<uint8_t>()
                         + static_cast<size_t>(bad) * dtype_size(u.src->type),
                       1, &value);
        CUDA_CHECK(cudaStreamSynchronize(stream));
        return check_finite(*u.src, r * u.cols + bad, value);
      }
      if (u.kind == target::bf16 && u.src->type == dtype::bf16) {
        // Default: the destination is host memory for host_experts.
        CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(u.dst) + r * row_bytes,
                                   slot.host.get(), bytes, cudaMemcpyDefault,
                                   stream));
      } else {
        CUDA_CHECK(cudaMemcpyAsync(slot.device.get(), slot.host.get(), bytes,
                                   cudaMemcpyHostToDevice, stream));
        convert(u, slot.device.get(), r, rows, stream);
      }
      CUDA_CHECK(cudaEventRecord(slot.done->get(), stream));
      done += bytes;
      progress.update(done);
    }
  }
  CUDA_CHECK(cudaStreamSynchronize(stream));
  progress.update(done, true);
  w.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                            - started)
                .count();
  return w;
}

} // namespace volt
