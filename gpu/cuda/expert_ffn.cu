// Expert SwiGLU FFN: the decode kernel (tensor-core mma.sync over weights
// streamed once from HBM), the gemm path (cuBLAS per expert) and the int8
// dequantisation they share.

#include "gpu/cuda/expert_ffn.cuh"

#include <algorithm>
#include <vector>

#include "gpu/cuda/cuda_check.hpp"
#include "gpu/cuda/decode_mma.cuh"
#include "gpu/cuda/permute.cuh"
#include "gpu/cuda/row_gemm.hpp"

namespace volt::cuda {

namespace {

/// h[r, j] = silu(Σ_s p[s, r, j]) * Σ_s p[s, r, ffn + j]: the decode path's
/// SwiGLU when w1/w3 were split along K; h in the activation type of W.
template <class W>
__global__ void silu_partials_kernel(const float* __restrict__ p,
                                     int64_t splits, int64_t n_rows,
                                     int64_t ffn, uint16_t* __restrict__ h) {
  chain_start();
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_rows * ffn)
    return;
  int64_t r = i / ffn;
  int64_t j = i % ffn;
  float g = 0;
  float u = 0;
  for (int64_t s = 0; s < splits; ++s) {
    const float* row = p + (s * n_rows + r) * 2 * ffn;
    g += row[j];
    u += row[ffn + j];
  }
  h[i] = to_activation<W>(g / (1.0f + __expf(-g)) * u);
}

/// h[r, j] = silu(gu[r, j]) * gu[r, ffn + j] (the gemm path's SwiGLU).
__global__ void silu_mul_kernel(const __nv_bfloat16* __restrict__ gu,
                                int64_t n_rows, int64_t ffn,
                                __nv_bfloat16* __restrict__ h) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_rows * ffn)
    return;
  int64_t r = i / ffn;
  int64_t j = i % ffn;
  float g = __bfloat162float(gu[r * 2 * ffn + j]);
  float u = __bfloat162float(gu[r * 2 * ffn + ffn + j]);
  h[i] = __float2bfloat16_rn(g / (1.0f + __expf(-g)) * u);
}

/// 16 elements per thread: one 16-byte load of int8, two 16-byte stores of
/// bf16 (cols is a multiple of 64, so a thread never straddles two rows).
__global__ void dequantize_int8_kernel(const int8_t* __restrict__ q,
                                       const float* __restrict__ s,
                                       int64_t rows, int64_t cols,
                                       __nv_bfloat16* __restrict__ out) {
  int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x)
              * 16;
  if (i >= rows * cols)
    return;
  float scale = s[i / cols];
  uint4 v = *reinterpret_cast<const uint4*>(q + i);
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  uint32_t o[8];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
#pragma unroll
    for (int b = 0; b < 4; b += 2) {
      float f0 = static_cast<float>(static_cast<int8_t>(w[j] >> (8 * b)))
                 * scale;
      float f1 = static_cast<float>(static_cast<int8_t>(w[j] >> (8 * b + 8)))
                 * scale;
      __nv_bfloat162 pair = __floats2bfloat162_rn(f0, f1);
      o[2 * j + b / 2] = *reinterpret_cast<uint32_t*>(&pair);
    }
  }
  auto* dst = reinterpret_cast<uint4*>(out + i);
  dst[0] = make_uint4(o[0], o[1], o[2], o[3]);
  dst[1] = make_uint4(o[4], o[5], o[6], o[7]);
}

size_t align_up(size_t x) {
  return (x + 255) / 256 * 256;
}

/// Rows for which the decode path may split w1/w3 along K (their f32
/// partials need workspace; beyond this the split is off).
constexpr int64_t max_split_rows = 256;
constexpr int64_t max_splits = 4;

/// The decode kernel tiles a group's rows 8 at a time, up to 4 tiles per
/// pass over the expert's weights; more rows take further passes.
constexpr int64_t token_tile_rows = 8;
constexpr int64_t max_token_tiles = 4;

decode_tuning tuning;

struct ffn_layout {
  size_t h = 0, gu = 0, p13 = 0, dq13 = 0, dq2 = 0, total = 0;
};

ffn_layout make_layout(const expert_layer& l, int64_t n_rows) {
  ffn_layout out;
  size_t bf = sizeof(__nv_bfloat16);
  out.h = 0;
  out.gu = align_up(bf * n_rows * l.ffn);
  out.p13 = out.gu + align_up(bf * n_rows * 2 * l.ffn);
  out.dq13 = out.p13
             + align_up(sizeof(float) * max_splits
                        * std::min(n_rows, max_split_rows) * 2 * l.ffn);
  size_t dq = l.format == weight_format::int8 ? 1 : 0;
  out.dq2 = out.dq13 + dq * align_up(bf * 2 * l.ffn * l.hidden);
  out.total = out.dq2 + dq * align_up(bf * l.hidden * l.ffn);
  return out;
}

int kstep_of(const expert_layer& l) {
  return l.format == weight_format::int8 ? 64 : 32;
}


/// Split-K factor for a product of reduction length k: `wanted` if every
/// split keeps at least 8 warp steps, else 1.
int64_t split_for(const expert_layer& layer, int64_t k, int64_t wanted) {
  int64_t step = kstep_of(layer);
  return wanted > 1 && k % (wanted * step) == 0 && k / (wanted * step) >= 8
           ? wanted
           : 1;
}

} // namespace


size_t expert_layer::expert_bytes() const {
  if (format == weight_format::int8)
    return static_cast<size_t>(3 * ffn * hidden)
           + sizeof(float) * static_cast<size_t>(2 * ffn + hidden);
  return sizeof(__nv_bfloat16) * static_cast<size_t>(3 * ffn * hidden);
}

size_t expert_ffn_workspace_bytes(const expert_layer& layer, int64_t n_rows) {
  return make_layout(layer, n_rows).total;
}

void set_decode_tuning(const decode_tuning& t) {
  tuning = t;
}

decode_tuning get_decode_tuning() {
  return tuning;
}

int64_t expert_ffn_splits(const expert_layer& layer, ffn_path path) {
  if (path == ffn_path::gemm)
    return 1;
  return split_for(layer, layer.ffn, std::min(tuning.w2_splits, max_splits));
}

ffn_path choose_ffn_path(const expert_layer& layer, int64_t max_rows) {
  // Thresholds measured per format (docs/PERFORMANCE.md).
  auto limit = layer.format == weight_format::int8
                 ? tuning.int8_decode_max_rows
                 : tuning.bf16_decode_max_rows;
  if (max_rows <= limit)
    return ffn_path::decode;
  const int64_t rows_per_pass = token_tile_rows * max_token_tiles;
  auto passes = (max_rows + rows_per_pass - 1) / rows_per_pass;
  auto reread = static_cast<double>(passes)
                * static_cast<double>(layer.expert_bytes());
  return reread <= static_cast<double>(tuning.decode_reread_max_bytes)
           ? ffn_path::decode
           : ffn_path::gemm;
}

const char* expert_ffn_unsupported(const expert_layer& layer) {
  if (layer.hidden <= 0 || layer.ffn <= 0 || layer.hidden % 64 != 0
      || layer.ffn % 64 != 0)
    return "the CUDA expert kernels need hidden_size and intermediate_size "
           "to be positive multiples of 64";
  return nullptr;
}

bool decode_takes_f16(const expert_layer& layer, ffn_path path) {
  return layer.format == weight_format::int8 && path == ffn_path::decode;
}

ffn_path expert_ffn(const expert_layer& layer, const ffn_groups& groups,
                    const void* rows, int64_t n_rows, int64_t max_rows,
                    ffn_path path, void* workspace, size_t workspace_bytes,
                    float* y, cublasHandle_t cublas, cudaStream_t stream) {
  if (auto why = expert_ffn_unsupported(layer))
    throw cuda_error(std::string{"expert_ffn: "} + why);
  auto l = make_layout(layer, n_rows);
  if (workspace_bytes < l.total)
    throw cuda_error("expert_ffn: workspace of "
                     + std::to_string(workspace_bytes) + " bytes, need "
                     + std::to_string(l.total));
  if (path == ffn_path::automatic)
    path = choose_ffn_path(layer, max_rows);
  if (n_rows == 0 || groups.n_groups == 0)
    return path;
  auto* base = static_cast<char*>(workspace);
  auto* h = reinterpret_cast<uint16_t*>(base + l.h);
  const bool int8 = layer.format == weight_format::int8;
  if (path == ffn_path::decode) {
    auto tile_rows = groups.rows_hint > 0 ? std::min(groups.rows_hint, max_rows)
                                          : max_rows;
    int nt = static_cast<int>(std::clamp<int64_t>(
      (tile_rows + token_tile_rows - 1) / token_tile_rows, 1, max_token_tiles));
    mma_args a{};
    a.group_expert = groups.expert;
    a.group_offsets = groups.offsets;
    a.x = static_cast<const uint16_t*>(rows);
    a.h = h;
    a.y = y;
    a.n_rows = n_rows;
    // w13 with SwiGLU: out = ffn rows (each with its w3 twin), K = hidden.
    a.w = layer.w13;
    a.expert_stride = 2 * layer.ffn * layer.hidden;
    a.pair_offset = layer.ffn * layer.hidden;
    a.scales = int8 ? layer.s13 : nullptr;
    a.scale_stride = 2 * layer.ffn;
    a.scale_pair = layer.ffn;
    a.out_rows = layer.ffn;
    a.k = layer.hidden;
    // Split w1/w3 along K too when few rows: more, shorter warps keep more
    // loads in flight; silu_partials_kernel then sums and applies SwiGLU.
    int64_t wanted13 = tuning.w13_splits > 0 ? tuning.w13_splits
                       : nt == 1                ? 4
                                                : 1;
    int64_t s13 = n_rows <= max_split_rows
                    ? split_for(layer, layer.hidden,
                                std::min(wanted13, max_splits))
                    : 1;
    a.k_per_split = layer.hidden / s13;
    auto* p13 = reinterpret_cast<float*>(base + l.p13);
    if (s13 > 1)
      a.y = p13;
    if (int8)
      launch_expert_mma<int8_t, true>(a, groups.n_groups, s13, nt,
                                      tuning.chunks, tuning.x_late, stream);
    else
      launch_expert_mma<__nv_bfloat16, true>(a, groups.n_groups, s13, nt,
                                             tuning.chunks, tuning.x_late, stream);
    if (s13 > 1) {
      auto n = n_rows * layer.ffn;
      auto blocks = static_cast<unsigned>((n + 255) / 256);
      if (int8)
        launch_chained(silu_partials_kernel<int8_t>, blocks, 256, 0, stream,
                       p13, s13, n_rows, layer.ffn, h);
      else
        launch_chained(silu_partials_kernel<__nv_bfloat16>, blocks, 256, 0,
                       stream, p13, s13, n_rows, layer.ffn, h);
    }
    // w2, split along K = ffn.
    auto splits = expert_ffn_splits(layer, path);
    a.x = h;
    a.w = layer.w2;
    a.expert_stride = layer.hidden * layer.ffn;
    a.pair_offset = 0;
    a.scales = int8 ? layer.s2 : nullptr;
    a.scale_stride = layer.hidden;
    a.scale_pair = 0;
    a.out_rows = layer.hidden;
    a.k = layer.ffn;
    a.k_per_split = layer.ffn / splits;
    a.y = y;
    // The groups come from before the w1/w3 product, two or more kernels
    // back: w2's first weights can be on their way while SwiGLU finishes.
    a.prefetch_weights = true;
    if (int8)
      launch_expert_mma<int8_t, false>(a, groups.n_groups, splits, nt,
                                       tuning.chunks, tuning.x_late, stream);
    else
      launch_expert_mma<__nv_bfloat16, false>(a, groups.n_groups, splits, nt,
                                              tuning.chunks, tuning.x_late, stream);
    return path;
  }
  // gemm path: cuBLAS per expert, host offsets needed.
  if (groups.host_offsets == nullptr || groups.host_expert == nullptr)
    throw cuda_error("expert_ffn: the gemm path needs host offsets");
  bind_stream(cublas, stream);
  auto* gu = reinterpret_cast<__nv_bfloat16*>(base + l.gu);
  auto* rows_bf16 = static_cast<const __nv_bfloat16*>(rows);
  auto* h_bf16 = reinterpret_cast<__nv_bfloat16*>(h);
  auto* dq13 = reinterpret_cast<__nv_bfloat16*>(base + l.dq13);
  auto* dq2 = reinterpret_cast<__nv_bfloat16*>(base + l.dq2);
  const int64_t ffn = layer.ffn;
  const int64_t hidden = layer.hidden;
  for_each_host_group(groups, [&](int64_t offset, int64_t m, int64_t e) {
    auto* w = expert_w13_bf16(layer, e, dq13, stream);
    row_gemm(cublas, w, rows_bf16 + offset * hidden, m, hidden, 2 * ffn,
             gu + offset * 2 * ffn, CUDA_R_16BF, 0.0f, stream);
  });
  auto n = n_rows * ffn;
  silu_mul_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(
    gu, n_rows, ffn, h_bf16);
  CUDA_CHECK_LAUNCH(silu_mul_kernel);
  for_each_host_group(groups, [&](int64_t offset, int64_t m, int64_t e) {
    auto* w = expert_w2_bf16(layer, e, dq2, stream);
    row_gemm(cublas, w, h_bf16 + offset * ffn, m, ffn, hidden,
             y + offset * hidden, CUDA_R_32F, 0.0f, stream);
  });
  return path;
}

ffn_path expert_ffn_single(const expert_layer& one, const void* rows,
                           int64_t count, int32_t* table_host,
                           int32_t* table_dev, void* workspace,
                           size_t workspace_bytes, float* y,
                           cublasHandle_t cublas, cudaStream_t stream) {
  table_host[0] = 0;
  table_host[1] = 0;
  table_host[2] = static_cast<int32_t>(count);
  copy_words(table_host, 3, table_dev, stream);
  ffn_groups groups;
  groups.n_groups = 1;
  groups.expert = table_dev;
  groups.offsets = table_dev + 1;
  groups.host_expert = table_host;
  groups.host_offsets = table_host + 1;
  return expert_ffn(one, groups, rows, count, count,
                    choose_ffn_path(one, count), workspace, workspace_bytes, y,
                    cublas, stream);
}

namespace {

const __nv_bfloat16* expert_matrix_bf16(const expert_layer& layer,
                                        const void* all, const float* scales,
                                        int64_t n_out, int64_t n_in, int64_t e,
                                        __nv_bfloat16* scratch,
                                        cudaStream_t stream) {
  if (layer.format != weight_format::int8)
    return static_cast<const __nv_bfloat16*>(all) + e * n_out * n_in;
  dequantize_int8(static_cast<const int8_t*>(all) + e * n_out * n_in,
                  scales + e * n_out, n_out, n_in, scratch, stream);
  return scratch;
}

} // namespace

const __nv_bfloat16* expert_w13_bf16(const expert_layer& layer, int64_t e,
                                     __nv_bfloat16* scratch,
                                     cudaStream_t stream) {
  return expert_matrix_bf16(layer, layer.w13, layer.s13, 2 * layer.ffn,
                            layer.hidden, e, scratch, stream);
}

const __nv_bfloat16* expert_w2_bf16(const expert_layer& layer, int64_t e,
                                    __nv_bfloat16* scratch,
                                    cudaStream_t stream) {
  return expert_matrix_bf16(layer, layer.w2, layer.s2, layer.hidden,
                            layer.ffn, e, scratch, stream);
}

void dequantize_int8(const int8_t* q, const float* s, int64_t rows,
                     int64_t cols, __nv_bfloat16* out, cudaStream_t stream) {
  auto n = rows * cols;
  if (n == 0)
    return;
  if (cols % 16 != 0)
    throw cuda_error("dequantize_int8: cols must be a multiple of 16");
  auto threads = n / 16;
  dequantize_int8_kernel<<<static_cast<unsigned>((threads + 255) / 256), 256,
                           0, stream>>>(q, s, rows, cols, out);
  CUDA_CHECK_LAUNCH(dequantize_int8_kernel);
}

} // namespace volt::cuda
