// A step of the CUDA executor: inputs to the device in one copy, the layers
// (attention, then the MoE here or the rows for other nodes), the LM head on
// the sampled rows, greedy tokens and the asked-for logits back. Decode steps
// replay as one CUDA graph per (rows, block-table width).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <cuda_profiler_api.h>

#include "base/error.hpp"
#include "gpu/cuda/cuda_check.hpp"
#include "gpu/cuda/dense_decode.cuh"
#include "gpu/cuda/prefill_attention.cuh"
#include "gpu/cuda/row_gemm.hpp"
#include "model/cuda_executor_impl.hpp"
#include "model/routing_mask.hpp"

namespace volt {

namespace {

/// Block tables are copied with a width rounded up to a power of two (at
/// least this), so that few graphs cover every context length.
constexpr int64_t min_table_width = 16;

int64_t table_width(const step_batch& b) {
  size_t widest = 1;
  for (const auto& s : b.sequences)
    widest = std::max(widest, s.block_table.size());
  int64_t w = min_table_width;
  while (w < static_cast<int64_t>(widest))
    w *= 2;
  return w;
}

/// Sequences with at least this many rows in a step (prompt chunks) attend
/// on the tensor cores, in tiles; the others (decodes, short chunks) with the
/// SIMT kernel.
constexpr int64_t tensor_core_min_rows = 16;

/// Where each input lives in the pinned block and its device copy: eight
/// [n] arrays, then the block tables [n, width].
struct input_layout {
  int64_t n;
  int64_t width;

  int64_t tokens() const {
    return 0;
  }
  int64_t positions() const {
    return n;
  }
  int64_t slots() const {
    return 2 * n;
  }
  int64_t row_table() const {
    return 3 * n;
  }
  int64_t sample_rows() const {
    return 4 * n;
  }
  int64_t tile_first_row() const {
    return 5 * n;
  }
  int64_t tile_rows() const {
    return 6 * n;
  }
  int64_t simt_rows() const {
    return 7 * n;
  }
  int64_t tables() const {
    return 8 * n;
  }
  size_t bytes() const {
    return sizeof(int32_t) * static_cast<size_t>(8 * n + n * width);
  }
};

} // namespace

caf::expected<step_progress> cuda_executor::start(step_request req) {
  auto available = available_experts(req.masked_experts,
                                     cfg_.num_local_experts);
  if (!available)
    return std::move(available.error());
  if (auto err = check_replayed_routing(req.replayed_routing,
                                        cfg_.num_hidden_layers, req.batch.size(),
                                        cfg_.num_experts_per_tok,
                                        cfg_.num_local_experts))
    return err;
  try {
    CUDA_CHECK(cudaSetDevice(device_));
    upload_mask(req.masked_experts, *available);
    if (cache_) {
      cache_->release_all();
      std::fill(cache_step_.begin(), cache_step_.end(), expert_cache_layer{});
      std::fill(timed_.begin(), timed_.end(), false);
    }
    if (!req.replayed_routing.empty()) {
      // Pinned, so that each layer's ids reach the device by a kernel and
      // not behind the expert cache's copies; the previous step is done
      // reading it.
      CUDA_CHECK(cudaStreamSynchronize(stream_->get()));
      replay_host_.reserve(sizeof(int32_t) * req.replayed_routing.size());
      std::copy(req.replayed_routing.begin(), req.replayed_routing.end(),
                replay_host_.get<int32_t>());
    }
    step_ = std::make_unique<step_state>();
    auto& st = *step_;
    st.req = std::move(req);
    st.n = st.req.batch.size();
    if (st.n > max_rows_)
      return make_volt_error(volt_errc::internal,
                             "cuda executor: a step of " + std::to_string(st.n)
                               + " rows; built for "
                               + std::to_string(max_rows_));
    st.sample_rows = st.req.greedy_rows;
    st.sample_rows.insert(st.sample_rows.end(), st.req.logit_rows.begin(),
                          st.req.logit_rows.end());
    std::sort(st.sample_rows.begin(), st.sample_rows.end());
    st.sample_rows.erase(
      std::unique(st.sample_rows.begin(), st.sample_rows.end()),
      st.sample_rows.end());
    st.width = table_width(st.req.batch);
    logits_host_.reserve(sizeof(float)
                         * std::max<size_t>(1, st.req.logit_rows.size())
                         * cfg_.vocab_size);
    const bool profiling = profile_this(st.n);
    const auto t0 = std::chrono::steady_clock::now();
    stage_inputs(st);
    copy_pages(st.req.copies);
    caf::expected<step_progress> out{step_progress{}};
    if (use_graph(st)) {
      replay_decode(st.n, st.width);
      out->result = finish();
      step_.reset();
    } else {
      enqueue_inputs(st.n, st.width);
      out = run_layers();
    }
    if (profiling)
      report_profiled_step(st.n, t0);
    return out;
  } catch (const std::exception& ex) {
    step_.reset();
    return make_volt_error(volt_errc::internal,
                           std::string{"cuda executor: "} + ex.what());
  }
}

caf::expected<step_progress> cuda_executor::resume(std::vector<float> outputs) {
  try {
    if (!step_)
      return make_volt_error(volt_errc::internal,
                             "cuda executor: resume without a step waiting "
                             "for experts");
    auto& st = *step_;
    const auto rows = st.n * cfg_.num_experts_per_tok;
    if (static_cast<int64_t>(outputs.size()) != rows * cfg_.hidden_size)
      return make_volt_error(volt_errc::internal,
                             "cuda executor: expert outputs of "
                               + std::to_string(outputs.size())
                               + " floats for " + std::to_string(rows)
                               + " rows");
    CUDA_CHECK(cudaSetDevice(device_));
    auto s = stream_->get();
    CUDA_CHECK(cudaMemcpyAsync(grouped_out_.get(), outputs.data(),
                               sizeof(float) * outputs.size(),
                               cudaMemcpyHostToDevice, s));
    moe_->combine_grouped(grouped_out_.get<float>(), st.n,
                          hidden_.get<float>(), s);
    // The copy reads pageable host memory: it must finish before `outputs`
    // goes.
    CUDA_CHECK(cudaStreamSynchronize(s));
    ++st.layer;
    return run_layers();
  } catch (const std::exception& ex) {
    step_.reset();
    return make_volt_error(volt_errc::internal,
                           std::string{"cuda executor: "} + ex.what());
  }
}

void cuda_executor::upload_mask(const std::vector<uint32_t>& masked,
                                const std::vector<uint8_t>& available) {
  const auto e = static_cast<size_t>(cfg_.num_local_experts);
  auto s = stream_->get();
  if (masked != masked_) {
    auto* flags = available_host_.get<uint8_t>();
    if (available.empty())
      std::fill(flags, flags + e, uint8_t{1});
    else
      std::copy(available.begin(), available.end(), flags);
    // Pinned: the copy is done before a later step can change the flags
    // (every step ends with a synchronisation).
    CUDA_CHECK(cudaMemcpyAsync(available_dev_.get(), flags, e,
                               cudaMemcpyHostToDevice, s));
    masked_ = masked;
  }
  if (!masked.empty())
    CUDA_CHECK(cudaMemsetAsync(degraded_dev_.get(), 0,
                               static_cast<size_t>(max_rows_), s));
}

void cuda_executor::copy_degraded() {
  if (masked_.empty())
    return;
  CUDA_CHECK(cudaMemcpyAsync(degraded_host_.get(), degraded_dev_.get(),
                             static_cast<size_t>(step_->n),
                             cudaMemcpyDeviceToHost, stream_->get()));
}

void cuda_executor::stage_inputs(step_state& st) {
  const auto& b = st.req.batch;
  input_layout at{st.n, st.width};
  auto* in = in_host_.get<int32_t>();
  int32_t max_pos = 0;
  for (size_t s = 0; s < b.sequences.size(); ++s) {
    const auto& seq = b.sequences[s];
    auto* table = in + at.tables() + static_cast<int64_t>(s) * at.width;
    std::fill(table, table + at.width, 0);
    std::copy(seq.block_table.begin(), seq.block_table.end(), table);
    for (auto r = seq.first_row; r < seq.first_row + seq.n_rows; ++r) {
      auto pos = b.positions[static_cast<size_t>(r)];
      in[at.tokens() + r] = b.token_ids[static_cast<size_t>(r)];
      in[at.positions() + r] = pos;
      in[at.row_table() + r] = static_cast<int32_t>(s);
      in[at.slots() + r] = static_cast<int32_t>(
        table[pos / page_size_] * page_size_ + pos % page_size_);
      max_pos = std::max(max_pos, pos);
    }
  }
  for (size_t i = 0; i < st.sample_rows.size(); ++i)
    in[at.sample_rows() + static_cast<int64_t>(i)]
      = static_cast<int32_t>(st.sample_rows[i]);
  st.max_keys = max_pos + 1;
  // Attention: prompt chunks in tensor-core tiles, every other row SIMT.
  st.tiles = 0;
  st.simt = 0;
  for (const auto& seq : b.sequences) {
    if (seq.n_rows >= tensor_core_min_rows && tensor_core_prefill_) {
      for (auto r = seq.first_row; r < seq.first_row + seq.n_rows;
           r += cuda::prefill_tile_rows) {
        in[at.tile_first_row() + st.tiles] = static_cast<int32_t>(r);
        in[at.tile_rows() + st.tiles] = static_cast<int32_t>(std::min(
          cuda::prefill_tile_rows, seq.first_row + seq.n_rows - r));
        ++st.tiles;
      }
    } else {
      for (auto r = seq.first_row; r < seq.first_row + seq.n_rows; ++r)
        in[at.simt_rows() + st.simt++] = static_cast<int32_t>(r);
    }
  }
}

void cuda_executor::copy_pages(const std::vector<page_copy>& copies) {
  const size_t page_bytes = sizeof(__nv_bfloat16) * page_size_
                            * cfg_.num_key_value_heads * cfg_.head_dim;
  const size_t layer_bytes = page_bytes * num_pages_;
  // One copy per layer: a 2D copy's pitch (a layer's pages) may exceed what
  // the driver takes. Copy-on-write is rare.
  for (const auto& c : copies)
    for (auto* cache : {&k_cache_, &v_cache_, &k_lo_, &v_lo_})
      for (int64_t l = 0; cache->bytes() > 0 && l < cfg_.num_hidden_layers;
           ++l) {
        auto* layer = cache->get<uint8_t>() + l * layer_bytes;
        CUDA_CHECK(cudaMemcpyAsync(layer + c.dst * page_bytes,
                                   layer + c.src * page_bytes, page_bytes,
                                   cudaMemcpyDeviceToDevice, stream_->get()));
      }
}

void cuda_executor::enqueue_inputs(int64_t n, int64_t width) {
  input_layout at{n, width};
  CUDA_CHECK(cudaMemcpyAsync(in_dev_.get(), in_host_.get(), at.bytes(),
                             cudaMemcpyHostToDevice, stream_->get()));
  cuda::embedding(w_.embed, cfg_.hidden_size,
                  in_dev_.get<int32_t>() + at.tokens(), n,
                  hidden_.get<float>(), stream_->get());
}

void cuda_executor::gemm(const __nv_bfloat16* x, const __nv_bfloat16* w,
                         int64_t n, int64_t in, int64_t out, float* y,
                         float beta) {
  // Row-major y[n, out] (+)= x[n, in] · w[out, in]ᵀ; bf16 operands, f32
  // accumulation and output.
  cuda::row_gemm(cublas_, w, x, n, in, out, y, CUDA_R_32F, beta,
                 stream_->get());
}

bool cuda_executor::dense_decode_here(int64_t n, int64_t n_out,
                                      int64_t k) const {
  return n <= dense_rows_ && cuda::dense_decode_takes(n, n_out, k);
}

void cuda_executor::enqueue_layer(int64_t l, int64_t n, int64_t max_keys,
                                  int64_t width) {
  const auto& lw = w_.layers[static_cast<size_t>(l)];
  const int64_t h = cfg_.hidden_size;
  const int64_t q_dim = cfg_.num_attention_heads * cfg_.head_dim;
  const auto eps = static_cast<float>(cfg_.rms_norm_eps);
  auto s = stream_->get();
  input_layout at{n, width};
  const auto* in = in_dev_.get<int32_t>();
  if (cache_)
    stage_experts(l, n);
  // With the precise activations every product also runs over the second
  // halves (_lo), added with beta 1; without them those are null.
  auto* xn_lo = precise_ ? xn_lo_.get<__nv_bfloat16>() : nullptr;
  auto* attn_lo = precise_ ? attn_lo_.get<__nv_bfloat16>() : nullptr;
  // Few rows (decode) take the decode kernel for the projections: its K
  // splits' partial products go to dense_parts_, summed by the kernel that
  // reads them (rope for q/k/v, the residual add before the post-attention
  // norm for o). The precise activations keep cuBLAS (two products each).
  const bool dense_qkv = !precise_ && dense_decode_here(n, qkv_dim_, h);
  const bool dense_o = !precise_ && dense_decode_here(n, h, q_dim);
  auto* parts = dense_parts_.get<float>();
  cuda::rms_norm(hidden_.get<float>(), nullptr, lw.input_norm, n, h, eps,
                 xn_.get<__nv_bfloat16>(), xn_lo, nullptr, s);
  const float* qkv_in = qkv_.get<float>();
  int64_t qkv_parts = 1;
  if (dense_qkv) {
    qkv_parts = qkv_splits_;
    cuda::dense_decode(lw.qkv, qkv_dim_, h, xn_.get<__nv_bfloat16>(), n,
                       qkv_parts, parts, s);
    qkv_in = parts;
  } else {
    gemm(xn_.get<__nv_bfloat16>(), lw.qkv, n, h, qkv_dim_, qkv_.get<float>(),
         0.0f);
    if (precise_)
      gemm(xn_lo, lw.qkv, n, h, qkv_dim_, qkv_.get<float>(), 1.0f);
  }
  const size_t layer_elems = static_cast<size_t>(num_pages_) * page_size_
                             * cfg_.num_key_value_heads * cfg_.head_dim;
  auto* k_layer = k_cache_.get<__nv_bfloat16>() + l * layer_elems;
  auto* v_layer = v_cache_.get<__nv_bfloat16>() + l * layer_elems;
  auto* k_lo = precise_ ? k_lo_.get<__nv_bfloat16>() + l * layer_elems
                        : nullptr;
  auto* v_lo = precise_ ? v_lo_.get<__nv_bfloat16>() + l * layer_elems
                        : nullptr;
  cuda::qkv_layout qkv{cfg_.num_attention_heads, cfg_.num_key_value_heads,
                       cfg_.head_dim, page_size_};
  cuda::rope_kv_write(qkv_in, qkv_parts, in + at.positions(), in + at.slots(),
                      rope_cos_.get<float>(), rope_sin_.get<float>(), qkv, n,
                      q_.get<float>(), k_layer, v_layer, k_lo, v_lo, s);
  const cuda::split_kv rest{k_lo, v_lo, attn_lo};
  cuda::attention_batch batch;
  batch.n_rows = n;
  batch.positions = in + at.positions();
  batch.row_table = in + at.row_table();
  batch.block_tables = in + at.tables();
  batch.table_stride = width;
  batch.max_keys = max_keys;
  auto shape = attention_shape_of();
  // A step without a step_ is a graph capture: decode rows only, all SIMT.
  const int64_t tiles = step_ ? step_->tiles : 0;
  const int64_t simt = step_ ? step_->simt : n;
  if (tiles > 0)
    cuda::prefill_attention(q_.get<float>(), k_layer, v_layer, batch,
                            in + at.tile_first_row(), in + at.tile_rows(),
                            tiles, shape, attn_.get<__nv_bfloat16>(), s);
  if (simt > 0) {
    if (simt < n) {
      batch.rows = in + at.simt_rows();
      batch.n_rows = simt;
    }
    auto ws = cuda::paged_attention_workspace_bytes(shape, simt, max_keys);
    if (ws > attn_ws_.bytes())
      attn_ws_.resize(ws); // never while capturing: graphs use the allocation
    cuda::paged_attention(q_.get<float>(), k_layer, v_layer, rest, batch,
                          shape, attn_ws_.get(), attn_ws_.bytes(),
                          attn_.get<__nv_bfloat16>(), s);
  }
  if (dense_o) {
    cuda::dense_decode(lw.o_proj, h, q_dim, attn_.get<__nv_bfloat16>(), n,
                       o_splits_, parts, s);
    cuda::add_rms_norm(hidden_.get<float>(), parts, o_splits_, lw.post_norm, n,
                       h, eps, xn_.get<__nv_bfloat16>(), xn_lo,
                       x32_.get<float>(), s);
  } else {
    gemm(attn_.get<__nv_bfloat16>(), lw.o_proj, n, q_dim, h,
         hidden_.get<float>(), 1.0f);
    if (precise_)
      gemm(attn_lo, lw.o_proj, n, q_dim, h, hidden_.get<float>(), 1.0f);
    cuda::rms_norm(hidden_.get<float>(), nullptr, lw.post_norm, n, h, eps,
                   xn_.get<__nv_bfloat16>(), xn_lo, x32_.get<float>(), s);
  }
  moe_->set_layer(cache_ ? slots_->slot_layer() : lw.experts);
  if (precise_) {
    moe_->route(x32_.get<float>(), lw.gate, n, s);
    replace_routing(l, n);
    moe_->enqueue_routed_precise(xn_.get<__nv_bfloat16>(), xn_lo, n,
                                 hidden_.get<float>(), true, s);
  } else if (local_experts_ && cache_) {
    enqueue_cached_moe(l, n);
  } else if (!local_experts_ || replays_routing()) {
    moe_->route(x32_.get<float>(), lw.gate, n, s);
    replace_routing(l, n);
    if (local_experts_)
      moe_->enqueue_routed(xn_.get<__nv_bfloat16>(), n,
                           cuda::ffn_path::automatic, hidden_.get<float>(),
                           true, s);
  } else {
    moe_->enqueue(xn_.get<__nv_bfloat16>(), x32_.get<float>(), lw.gate, n,
                  cuda::ffn_path::automatic, hidden_.get<float>(), true, s);
  }
  if (step_ && step_->req.record_routing) {
    const auto k = cfg_.num_experts_per_tok;
    CUDA_CHECK(cudaMemcpyAsync(routing_host_.get<int32_t>() + l * n * k,
                               moe_->topk_ids(), sizeof(int32_t) * n * k,
                               cudaMemcpyDeviceToHost, s));
  }
}

void cuda_executor::copy_logits(int64_t first, int64_t count) {
  const auto& st = *step_;
  const auto vocab = cfg_.vocab_size;
  for (size_t i = 0; i < st.req.logit_rows.size(); ++i) {
    auto at = std::lower_bound(st.sample_rows.begin(), st.sample_rows.end(),
                               st.req.logit_rows[i])
              - st.sample_rows.begin();
    if (at < first || at >= first + count)
      continue;
    CUDA_CHECK(cudaMemcpyAsync(logits_host_.get<float>() + i * vocab,
                               logits_.get<float>() + (at - first) * vocab,
                               sizeof(float) * vocab, cudaMemcpyDeviceToHost,
                               stream_->get()));
  }
}

void cuda_executor::enqueue_head(int64_t m, const int32_t* rows) {
  auto s = stream_->get();
  const int64_t h = cfg_.hidden_size;
  const int64_t vocab = cfg_.vocab_size;
  // bf16 into the LM head even with the precise activations: one rounding
  // at the end moves the logits by about bf16's step (docs/PERFORMANCE.md),
  // where the same rounding in an early layer grows through the others.
  cuda::rms_norm(hidden_.get<float>(), rows, w_.final_norm, m, h,
                 static_cast<float>(cfg_.rms_norm_eps),
                 xf_.get<__nv_bfloat16>(), nullptr, nullptr, s);
  for (int64_t c = 0; c < m; c += head_rows_) {
    auto mc = std::min(head_rows_, m - c);
    // The LM head's input is bf16 with the precise activations too.
    if (dense_decode_here(mc, vocab, h))
      cuda::dense_decode(w_.lm_head, vocab, h, xf_.get<__nv_bfloat16>() + c * h,
                         mc, 1, logits_.get<float>(), s);
    else
      gemm(xf_.get<__nv_bfloat16>() + c * h, w_.lm_head, mc, h, vocab,
           logits_.get<float>(), 0.0f);
    cuda::argmax_rows(logits_.get<float>(), mc, vocab,
                      greedy_dev_.get<int32_t>() + c, s);
    // A graph capture leaves the copies to the caller, after each replay.
    if (step_)
      copy_logits(c, mc);
  }
  CUDA_CHECK(cudaMemcpyAsync(greedy_host_.get(), greedy_dev_.get(),
                             sizeof(int32_t) * m, cudaMemcpyDeviceToHost, s));
}

caf::expected<step_progress> cuda_executor::run_layers() {
  auto& st = *step_;
  for (; st.layer < cfg_.num_hidden_layers; ++st.layer) {
    enqueue_layer(st.layer, st.n, st.max_keys, st.width);
    if (!local_experts_) {
      step_progress waiting;
      waiting.needs = remote_rows(st.n);
      return waiting;
    }
  }
  input_layout at{st.n, st.width};
  enqueue_head(static_cast<int64_t>(st.sample_rows.size()),
               in_dev_.get<int32_t>() + at.sample_rows());
  copy_degraded();
  enqueued_at_ = std::chrono::steady_clock::now();
  CUDA_CHECK(cudaStreamSynchronize(stream_->get()));
  step_progress done;
  done.result = finish();
  step_.reset();
  return done;
}

expert_rows cuda_executor::remote_rows(int64_t n) {
  auto s = stream_->get();
  const int64_t h = cfg_.hidden_size;
  const int64_t k = cfg_.num_experts_per_tok;
  const int64_t e = cfg_.num_local_experts;
  auto* plan = plan_host_.get<int32_t>();
  CUDA_CHECK(cudaMemcpyAsync(plan, moe_->sorted_pair(),
                             sizeof(int32_t) * n * k, cudaMemcpyDeviceToHost,
                             s));
  CUDA_CHECK(cudaMemcpyAsync(plan + n * k, moe_->expert_offsets(),
                             sizeof(int32_t) * (e + 1), cudaMemcpyDeviceToHost,
                             s));
  CUDA_CHECK(cudaMemcpyAsync(rows_host_.get(), x32_.get(),
                             sizeof(float) * n * h, cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  expert_rows out;
  out.layer = step_->layer;
  const auto* offsets = plan + n * k;
  for (int64_t x = 0; x < e; ++x)
    if (offsets[x + 1] > offsets[x]) {
      out.expert_ids.push_back(static_cast<uint32_t>(x));
      out.row_counts.push_back(
        static_cast<uint32_t>(offsets[x + 1] - offsets[x]));
    }
  // Grouped order: expert ascending, tokens ascending within one. Appended
  // rather than resized: a prompt chunk's rows are tens of MiB, and zeroing
  // them first would be a pass for nothing.
  out.rows.reserve(static_cast<size_t>(n * k * h));
  const auto* x32 = rows_host_.get<float>();
  for (int64_t r = 0; r < n * k; ++r) {
    const auto* row = x32 + (plan[r] / k) * h;
    out.rows.insert(out.rows.end(), row, row + h);
  }
  return out;
}

step_result cuda_executor::finish() {
  auto& st = *step_;
  const auto vocab = cfg_.vocab_size;
  step_result res;
  const auto* greedy = greedy_host_.get<int32_t>();
  for (auto row : st.req.greedy_rows) {
    auto at = std::lower_bound(st.sample_rows.begin(), st.sample_rows.end(),
                               row)
              - st.sample_rows.begin();
    res.greedy.push_back(greedy[at]);
  }
  const auto* logits = logits_host_.get<float>();
  res.logits.assign(logits, logits + st.req.logit_rows.size() * vocab);
  if (st.req.record_routing) {
    const auto* r = routing_host_.get<int32_t>();
    res.routing.assign(r, r + cfg_.num_hidden_layers * st.n
                                * cfg_.num_experts_per_tok);
  }
  if (!masked_.empty()) {
    const auto* d = degraded_host_.get<uint8_t>();
    res.degraded_rows.assign(d, d + st.n);
  }
  if (cache_) {
    collect_stalls();
    res.expert_cache = cache_step_;
  }
  return res;
}

bool cuda_executor::profile_this(int64_t n) {
  if (n != profile_rows_ || profile_skip_-- != 0)
    return false;
  CUDA_CHECK(cudaProfilerStart());
  return true;
}

void cuda_executor::report_profiled_step(
  int64_t n, std::chrono::steady_clock::time_point t0) {
  CUDA_CHECK(cudaProfilerStop());
  auto ms = [](auto a, auto b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  std::fprintf(stderr,
               "volt profile: step of %lld rows: enqueued in %.3f ms, done "
               "in %.3f ms\n",
               static_cast<long long>(n), ms(t0, enqueued_at_),
               ms(t0, std::chrono::steady_clock::now()));
}

bool cuda_executor::replays_routing() const {
  return step_ && !step_->req.replayed_routing.empty();
}

void cuda_executor::replace_routing(int64_t l, int64_t n) {
  if (!replays_routing())
    return;
  const auto k = cfg_.num_experts_per_tok;
  moe_->replace_routing(replay_host_.get<int32_t>() + l * n * k, n,
                        stream_->get());
}

bool cuda_executor::graphable(const step_state& st) const {
  // The expert cache reads every layer's routing back on the host, as the
  // precise activations' experts (cuBLAS per expert) read their sizes.
  if (!local_experts_ || cache_ || precise_ || st.n > max_graph_rows_
      || st.n > head_rows_
      || st.req.record_routing || !st.req.replayed_routing.empty()
      || static_cast<int64_t>(st.sample_rows.size()) != st.n
      || static_cast<int64_t>(st.req.batch.sequences.size()) != st.n)
    return false;
  // Expert groups on the gemm path read their sizes back to the host.
  return cuda::choose_ffn_path(w_.layers.front().experts, st.n)
         == cuda::ffn_path::decode;
}

bool cuda_executor::use_graph(const step_state& st) {
  if (!graphable(st))
    return false;
  auto key = std::make_pair(st.n, st.width);
  return !seen_shapes_.insert(key).second;
}

void cuda_executor::replay_decode(int64_t n, int64_t width) {
  auto s = stream_->get();
  auto key = std::make_pair(n, width);
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    // Captured without the step, so that nothing of one request is baked
    // in (no routing record, no logits copies: those follow each replay);
    // the key bound is the model's context, positions and tables come from
    // the input copy at each replay.
    auto st = std::move(step_);
    // A row's keys end within its block table, so the table width bounds
    // them: the split attention sizes its grid for this many, not for the
    // model's whole context.
    const int64_t graph_max_keys
      = std::min<int64_t>(cfg_.max_position_embeddings, width * page_size_);
    try {
      auto exec = cuda::capture_graph(s, [&] {
        enqueue_inputs(n, width);
        for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l)
          enqueue_layer(l, n, graph_max_keys, width);
        enqueue_head(n, nullptr);
      });
      it = graphs_.emplace(key, exec).first;
    } catch (...) {
      step_ = std::move(st);
      throw;
    }
    step_ = std::move(st);
  }
  CUDA_CHECK(cudaGraphLaunch(it->second, s));
  enqueued_at_ = std::chrono::steady_clock::now();
  // The graph computed every row's logits (its rows are the sample rows),
  // still in the buffer: copy those asked for (a temperature).
  copy_logits(0, n);
  copy_degraded();
  CUDA_CHECK(cudaStreamSynchronize(s));
}

} // namespace volt
