// Expert SwiGLU FFN: the decode kernel (tensor-core mma.sync over weights
// streamed once from HBM), the gemm path (cuBLAS per expert) and the int8
// dequantisation they share.

#include "gpu/cuda/expert_ffn.cuh"

#include <algorithm>
#include <vector>

#include "gpu/cuda/cuda_check.hpp"
#include "gpu/cuda/permute.cuh"
#include "gpu/cuda/row_gemm.hpp"

namespace volt::cuda {

namespace {

constexpr int warps_per_block = 4;
constexpr int rows_per_warp = 16;

/// Arguments of one decode product (w13 with SwiGLU, or w2).
struct mma_args {
  const void* w; // the layer's matrix, [n_experts, rows_per_expert, K]
  int64_t expert_stride; // elements per expert
  int64_t pair_offset; // SwiGLU: elements from w1 row j to w3 row j
  const float* scales; // int8: [n_experts, scale_stride]; else nullptr
  int64_t scale_stride;
  int64_t scale_pair; // SwiGLU: scale index from w1 row j to w3 row j
  const int32_t* group_expert; // [n_groups]
  const int32_t* group_offsets; // [n_groups + 1]
  int64_t out_rows; // output features: ffn (SwiGLU) or hidden
  int64_t k; // reduction length: hidden or ffn
  int64_t k_per_split;
  // Activations as raw 16-bit values: bf16 with bf16 weights, f16 with int8
  // weights (see int8x4_to_f16x4).
  const uint16_t* x; // [n_rows, k]
  uint16_t* h; // SwiGLU out: [n_rows, ffn]
  float* y; // w2 out: [splits, n_rows, out_rows]
  int64_t n_rows;
};

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

/// Streams 16 bytes of weights: read once, so keep them out of L1.
__device__ __forceinline__ uint4 load_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

/// Four int8 (bytes 0..3) to four f16 in two registers (elements 0,1 and
/// 2,3): two byte permutes build 1024 + (q + 128) in each half (f16 has ten
/// mantissa bits, so the 2^10 magic number takes a byte as is) and one
/// packed subtraction leaves q exactly: 5 instructions per 4 weights. bf16
/// (8-bit significand) cannot hold 2^k + a byte, so a bf16 route has to go
/// through f32: 11 instructions, which made the int8 kernel issue-bound.
__device__ __forceinline__ void int8x4_to_f16x4(uint32_t q, uint32_t& lo,
                                                uint32_t& hi) {
  uint32_t u = q ^ 0x80808080u; // q + 128, unsigned
  lo = __byte_perm(u, 0x64646464u, 0x5140);
  hi = __byte_perm(u, 0x64646464u, 0x5342);
  constexpr uint32_t magic = 0x64806480u; // 1152 = 1024 + 128, twice
  asm("sub.rn.f16x2 %0, %0, %1;" : "+r"(lo) : "r"(magic));
  asm("sub.rn.f16x2 %0, %0, %1;" : "+r"(hi) : "r"(magic));
}

__device__ __forceinline__ void mma_f16(float (&c)[4], uint32_t a0,
                                        uint32_t a1, uint32_t a2, uint32_t a3,
                                        uint32_t b0, uint32_t b1) {
  asm volatile(
    "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
    "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
    : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
    : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/// Rounds to the 16-bit activation type of weights W: f16 for int8, bf16
/// otherwise.
template <class W>
__device__ __forceinline__ uint16_t to_activation(float v) {
  if constexpr (sizeof(W) == 1)
    return __half_as_ushort(__float2half_rn(v));
  else
    return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], uint32_t a0,
                                         uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  asm volatile(
    "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
    "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
    : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
    : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/// This kernel does the following for the 16 output rows of each warp, for
/// group blockIdx.y and K split blockIdx.z:
/// 1. skips groups without rows (so inactive experts' weights stay unread);
/// 2. for each pass over NT * 8 of the group's tokens, walks its K range: each
///    thread loads Chunks * 16 contiguous bytes of rows (gid, gid + 8) at
///    k-offset tig * Chunks * VEC and the same k positions of its token's x
///    row. A dot product may visit K in any order, so the lane's contiguous
///    chunk serves as the k-columns (2 tig, 2 tig + 1, 2 tig + 8, 2 tig + 9)
///    of each m16n8k16 mma, for A and B alike: coalesced 16-byte loads (a
///    warp reads Chunks * 64 contiguous bytes of each of its 16 rows per
///    step), no shuffles;
/// 3. int8 weights are widened to f16 in registers (the activations are f16
///    then, bf16 with bf16 weights); the per-row scale multiplies the
///    accumulator at the end (it factors out of the sum);
/// 4. SwiGLU without split: the warp also holds the w3 rows matching its w1
///    rows, so h = silu(g) * u is formed in registers and stored as bf16.
///    Otherwise the f32 partial sums of split blockIdx.z are stored (SwiGLU:
///    gate at column row, up at column ffn + row) for a reduction kernel.
/// XLate: x is loaded 8 bytes at a time right before each mma instead of
/// with the weights, and registers are capped for 4 blocks per SM: latency
/// traded for occupancy at large NT.
template <class W, int NT, bool Swiglu, int Chunks, bool XLate>
__global__ void __launch_bounds__(warps_per_block * 32, XLate ? 4 : 1)
  expert_mma_kernel(mma_args a) {
  constexpr int vec = 16 / static_cast<int>(sizeof(W)); // elements per load
  constexpr int per_thread = Chunks * vec; // contiguous k per thread and row
  constexpr int kstep = 4 * per_thread; // k advanced per warp step
  constexpr int subs = per_thread / 4; // mma per step
  constexpr int at = Swiglu ? 2 : 1; // A tiles (w1, w3)
  constexpr int xq = per_thread / 8; // uint4 of x per token per step
  // Enough 16-byte loads in flight per thread without spilling registers.
  constexpr int unroll = (NT <= 2 ? 8 : 4) / (Chunks * at) > 0
                           ? (NT <= 2 ? 8 : 4) / (Chunks * at)
                           : 1;
  const int lane = threadIdx.x & 31;
  const int gid = lane >> 2;
  const int tig = lane & 3;
  const int64_t r0 = (static_cast<int64_t>(blockIdx.x) * warps_per_block
                      + threadIdx.x / 32)
                     * rows_per_warp;
  if (r0 >= a.out_rows)
    return;
  const int begin = a.group_offsets[blockIdx.y];
  const int end = a.group_offsets[blockIdx.y + 1];
  const int64_t e = a.group_expert[blockIdx.y];
  if (begin >= end || e < 0) // no rows, or computed elsewhere
    return;
  const W* wbase = static_cast<const W*>(a.w) + e * a.expert_stride;
  const W* wrow[at][2];
#pragma unroll
  for (int t = 0; t < at; ++t) {
    wrow[t][0] = wbase + t * a.pair_offset + (r0 + gid) * a.k
                 + tig * per_thread;
    wrow[t][1] = wrow[t][0] + 8 * a.k;
  }
  const int64_t k_begin = blockIdx.z * a.k_per_split;
  const int64_t k_end = k_begin + a.k_per_split;
  const bool fused = Swiglu && gridDim.z == 1;
  for (int tb = begin; tb < end; tb += NT * 8) {
    float acc[at][NT][4];
#pragma unroll
    for (int t = 0; t < at; ++t)
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int i = 0; i < 4; ++i)
          acc[t][n][i] = 0.0f;
    const uint16_t* xrow[NT];
    bool tile_live[NT];
    bool x_valid[NT];
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      int tok = tb + n * 8 + gid;
      tile_live[n] = tb + n * 8 < end;
      x_valid[n] = tok < end;
      xrow[n] = a.x + static_cast<int64_t>(x_valid[n] ? tok : begin) * a.k
                + tig * per_thread;
    }
    auto load = [&](int64_t k0, uint4(&wa)[at][2][Chunks],
                    uint4(&xb)[NT][xq]) {
#pragma unroll
      for (int t = 0; t < at; ++t)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int c = 0; c < Chunks; ++c)
            wa[t][h][c] = load_stream(wrow[t][h] + k0 + c * vec);
      if constexpr (!XLate) {
#pragma unroll
        for (int n = 0; n < NT; ++n)
#pragma unroll
          for (int q = 0; q < xq; ++q) {
            uint4 v = make_uint4(0, 0, 0, 0);
            if (tile_live[n])
              v = __ldg(reinterpret_cast<const uint4*>(xrow[n] + k0) + q);
            xb[n][q] = x_valid[n] ? v : make_uint4(0, 0, 0, 0);
          }
      }
    };
    auto compute = [&](int64_t k0, const uint4(&wa)[at][2][Chunks],
                       const uint4(&xb)[NT][xq]) {
#pragma unroll
      for (int s = 0; s < subs; ++s) {
        uint32_t af[at][4];
#pragma unroll
        for (int t = 0; t < at; ++t) {
          if constexpr (sizeof(W) == 1) {
            int8x4_to_f16x4(word(wa[t][0][s / 4], s % 4), af[t][0], af[t][2]);
            int8x4_to_f16x4(word(wa[t][1][s / 4], s % 4), af[t][1], af[t][3]);
          } else {
            af[t][0] = word(wa[t][0][(2 * s) / 4], (2 * s) % 4);
            af[t][2] = word(wa[t][0][(2 * s + 1) / 4], (2 * s + 1) % 4);
            af[t][1] = word(wa[t][1][(2 * s) / 4], (2 * s) % 4);
            af[t][3] = word(wa[t][1][(2 * s + 1) / 4], (2 * s + 1) % 4);
          }
        }
#pragma unroll
        for (int n = 0; n < NT; ++n) {
          if (!tile_live[n])
            continue;
          uint32_t b0;
          uint32_t b1;
          if constexpr (XLate) {
            // Elements 4 s .. 4 s + 3 of the thread's chunk, as for A.
            uint2 v = __ldg(reinterpret_cast<const uint2*>(xrow[n] + k0
                                                           + 4 * s));
            b0 = x_valid[n] ? v.x : 0u;
            b1 = x_valid[n] ? v.y : 0u;
          } else {
            b0 = word(xb[n][(2 * s) / 4], (2 * s) % 4);
            b1 = word(xb[n][(2 * s + 1) / 4], (2 * s + 1) % 4);
          }
#pragma unroll
          for (int t = 0; t < at; ++t)
            if constexpr (sizeof(W) == 1)
              mma_f16(acc[t][n], af[t][0], af[t][1], af[t][2], af[t][3], b0,
                      b1);
            else
              mma_bf16(acc[t][n], af[t][0], af[t][1], af[t][2], af[t][3], b0,
                       b1);
        }
      }
    };
    int64_t k0 = k_begin;
    for (; k0 + unroll * kstep <= k_end; k0 += unroll * kstep) {
      uint4 wa[unroll][at][2][Chunks];
      uint4 xb[unroll][NT][xq];
#pragma unroll
      for (int u = 0; u < unroll; ++u)
        load(k0 + u * kstep, wa[u], xb[u]);
#pragma unroll
      for (int u = 0; u < unroll; ++u)
        compute(k0 + u * kstep, wa[u], xb[u]);
    }
    for (; k0 < k_end; k0 += kstep) {
      uint4 wa[at][2][Chunks];
      uint4 xb[NT][xq];
      load(k0, wa, xb);
      compute(k0, wa, xb);
    }
    // Epilogue: c[0], c[1] are row gid, tokens 2 tig, 2 tig + 1 of the tile;
    // c[2], c[3] the same tokens for row gid + 8.
    const int64_t out_stride = Swiglu ? 2 * a.out_rows : a.out_rows;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t row = r0 + gid + 8 * half;
      float s0 = 1.0f;
      float s1 = 1.0f;
      if (a.scales != nullptr) {
        s0 = a.scales[e * a.scale_stride + row];
        if constexpr (Swiglu)
          s1 = a.scales[e * a.scale_stride + a.scale_pair + row];
      }
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          int tok = tb + n * 8 + 2 * tig + c;
          if (tok >= end)
            continue;
          float v0 = acc[0][n][2 * half + c] * s0;
          float v1 = acc[at - 1][n][2 * half + c] * s1;
          if (fused) {
            float silu = v0 / (1.0f + __expf(-v0));
            a.h[static_cast<int64_t>(tok) * a.out_rows + row]
              = to_activation<W>(silu * v1);
          } else {
            float* out = a.y + (blockIdx.z * a.n_rows + tok) * out_stride;
            out[row] = v0;
            if constexpr (Swiglu)
              out[a.out_rows + row] = v1;
          }
        }
    }
  }
}

template <class W, bool Swiglu, int Chunks>
void launch_expert_mma_chunks(const mma_args& a, dim3 grid, int nt,
                              bool x_late, cudaStream_t stream) {
  dim3 block(warps_per_block * 32);
  switch (nt) {
    case 1:
      expert_mma_kernel<W, 1, Swiglu, Chunks, false>
        <<<grid, block, 0, stream>>>(a);
      break;
    case 2:
      expert_mma_kernel<W, 2, Swiglu, Chunks, false>
        <<<grid, block, 0, stream>>>(a);
      break;
    case 3:
      if (x_late)
        expert_mma_kernel<W, 3, Swiglu, Chunks, true>
          <<<grid, block, 0, stream>>>(a);
      else
        expert_mma_kernel<W, 3, Swiglu, Chunks, false>
          <<<grid, block, 0, stream>>>(a);
      break;
    default:
      if (x_late)
        expert_mma_kernel<W, 4, Swiglu, Chunks, true>
          <<<grid, block, 0, stream>>>(a);
      else
        expert_mma_kernel<W, 4, Swiglu, Chunks, false>
          <<<grid, block, 0, stream>>>(a);
      break;
  }
  CUDA_CHECK_LAUNCH(expert_mma_kernel);
}

/// Launches the decode product over n_groups groups and `splits` K splits,
/// with 32-byte chunks per thread where K allows (full 128-byte lines per
/// row per warp step), else 16-byte ones.
template <class W, bool Swiglu>
void launch_expert_mma(const mma_args& a, int64_t n_groups, int64_t splits,
                       int nt, int chunks, bool x_late, cudaStream_t stream) {
  dim3 grid(static_cast<unsigned>((a.out_rows / rows_per_warp + warps_per_block
                                   - 1)
                                  / warps_per_block),
            static_cast<unsigned>(n_groups), static_cast<unsigned>(splits));
  constexpr int vec = 16 / static_cast<int>(sizeof(W));
  if (chunks == 2 && a.k_per_split % (4 * 2 * vec) == 0)
    launch_expert_mma_chunks<W, Swiglu, 2>(a, grid, nt, x_late, stream);
  else
    launch_expert_mma_chunks<W, Swiglu, 1>(a, grid, nt, x_late, stream);
}

/// h[r, j] = silu(Σ_s p[s, r, j]) * Σ_s p[s, r, ffn + j]: the decode path's
/// SwiGLU when w1/w3 were split along K; h in the activation type of W.
template <class W>
__global__ void silu_partials_kernel(const float* __restrict__ p,
                                     int64_t splits, int64_t n_rows,
                                     int64_t ffn, uint16_t* __restrict__ h) {
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
        silu_partials_kernel<int8_t>
          <<<blocks, 256, 0, stream>>>(p13, s13, n_rows, layer.ffn, h);
      else
        silu_partials_kernel<__nv_bfloat16>
          <<<blocks, 256, 0, stream>>>(p13, s13, n_rows, layer.ffn, h);
      CUDA_CHECK_LAUNCH(silu_partials_kernel);
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
