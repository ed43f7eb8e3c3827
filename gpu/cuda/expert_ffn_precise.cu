// The experts' gemm path with the precise activations ([model] activations =
// "float32"): every activation that enters a product is a bf16 pair (hi + lo,
// bf16_split.cuh), each product runs over both halves into one f32 result
// (cuBLAS per expert, beta 1 for the second), SwiGLU runs in f32 and its
// output is split again for w2. The weights stay bf16 (or int8, dequantised
// per expert), so only the activations' rounding goes away.

#include <algorithm>
#include <string>

#include "gpu/cuda/bf16_split.cuh"
#include "gpu/cuda/cuda_check.hpp"
#include "gpu/cuda/expert_ffn.cuh"
#include "gpu/cuda/row_gemm.hpp"

namespace volt::cuda {

namespace {

size_t align_up(size_t x) {
  return (x + 255) / 256 * 256;
}

/// Workspace: [gu f32 n × 2 ffn | h_hi bf16 n × ffn | h_lo | dequantised
/// w13 | w2 (int8 only)].
struct precise_layout {
  size_t h_hi = 0, h_lo = 0, dq13 = 0, dq2 = 0, total = 0;
};

precise_layout make_precise_layout(const expert_layer& l, int64_t n_rows) {
  precise_layout out;
  const auto n = static_cast<size_t>(std::max<int64_t>(n_rows, 1));
  const auto ffn = static_cast<size_t>(l.ffn);
  const auto hidden = static_cast<size_t>(l.hidden);
  const size_t bf = sizeof(__nv_bfloat16);
  out.h_hi = align_up(sizeof(float) * n * 2 * ffn);
  out.h_lo = out.h_hi + align_up(bf * n * ffn);
  out.dq13 = out.h_lo + align_up(bf * n * ffn);
  const size_t dq = l.format == weight_format::int8 ? 1 : 0;
  out.dq2 = out.dq13 + dq * align_up(bf * 2 * ffn * hidden);
  out.total = out.dq2 + dq * align_up(bf * hidden * ffn);
  return out;
}

/// h[r, j] = silu(gu[r, j]) * gu[r, ffn + j] in f32, written as a bf16 pair.
__global__ void silu_mul_split_kernel(const float* __restrict__ gu,
                                      int64_t n_rows, int64_t ffn,
                                      uint16_t* __restrict__ h_hi,
                                      uint16_t* __restrict__ h_lo) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_rows * ffn)
    return;
  const int64_t r = i / ffn;
  const int64_t j = i % ffn;
  const float g = gu[r * 2 * ffn + j];
  const float u = gu[r * 2 * ffn + ffn + j];
  const float h = g / (1.0f + expf(-g)) * u;
  const uint16_t hi = bf16_bits_of(h);
  h_hi[i] = hi;
  h_lo[i] = bf16_rest_bits(h, hi);
}

} // namespace

size_t expert_ffn_precise_workspace_bytes(const expert_layer& layer,
                                          int64_t n_rows) {
  return make_precise_layout(layer, n_rows).total;
}

void expert_ffn_precise(const expert_layer& layer, const ffn_groups& groups,
                        const __nv_bfloat16* rows_hi,
                        const __nv_bfloat16* rows_lo, int64_t n_rows,
                        void* workspace, size_t workspace_bytes, float* y,
                        cublasHandle_t cublas, cudaStream_t stream) {
  if (auto why = expert_ffn_unsupported(layer))
    throw cuda_error(std::string{"expert_ffn_precise: "} + why);
  const auto l = make_precise_layout(layer, n_rows);
  if (workspace_bytes < l.total)
    throw cuda_error("expert_ffn_precise: workspace of "
                     + std::to_string(workspace_bytes) + " bytes, need "
                     + std::to_string(l.total));
  if (groups.host_offsets == nullptr || groups.host_expert == nullptr)
    throw cuda_error("expert_ffn_precise: needs host offsets");
  if (n_rows == 0 || groups.n_groups == 0)
    return;
  bind_stream(cublas, stream);
  auto* base = static_cast<char*>(workspace);
  auto* gu = reinterpret_cast<float*>(base);
  auto* h_hi = reinterpret_cast<__nv_bfloat16*>(base + l.h_hi);
  auto* h_lo = reinterpret_cast<__nv_bfloat16*>(base + l.h_lo);
  auto* dq13 = reinterpret_cast<__nv_bfloat16*>(base + l.dq13);
  auto* dq2 = reinterpret_cast<__nv_bfloat16*>(base + l.dq2);
  const int64_t ffn = layer.ffn;
  const int64_t hidden = layer.hidden;
  // y rows [offset, offset + m) = x_hi · wᵀ + x_lo · wᵀ.
  auto both = [&](const __nv_bfloat16* w, const __nv_bfloat16* x_hi,
                  const __nv_bfloat16* x_lo, int64_t m, int64_t k,
                  int64_t n_out, float* out) {
    row_gemm(cublas, w, x_hi, m, k, n_out, out, CUDA_R_32F, 0.0f, stream);
    row_gemm(cublas, w, x_lo, m, k, n_out, out, CUDA_R_32F, 1.0f, stream);
  };
  for_each_host_group(groups, [&](int64_t offset, int64_t m, int64_t e) {
    both(expert_w13_bf16(layer, e, dq13, stream),
         rows_hi + offset * hidden, rows_lo + offset * hidden, m, hidden,
         2 * ffn, gu + offset * 2 * ffn);
  });
  const int64_t n = n_rows * ffn;
  silu_mul_split_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0,
                          stream>>>(gu, n_rows, ffn,
                                    reinterpret_cast<uint16_t*>(h_hi),
                                    reinterpret_cast<uint16_t*>(h_lo));
  CUDA_CHECK_LAUNCH(silu_mul_split_kernel);
  for_each_host_group(groups, [&](int64_t offset, int64_t m, int64_t e) {
    both(expert_w2_bf16(layer, e, dq2, stream),
         h_hi + offset * ffn, h_lo + offset * ffn, m, ffn, hidden,
         y + offset * hidden);
  });
}

} // namespace volt::cuda
