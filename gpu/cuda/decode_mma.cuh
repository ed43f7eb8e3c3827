#pragma once

// The decode path's product: token rows times weight matrices streamed once
// from HBM with tensor-core mma.sync, for few rows (bandwidth bound). The
// experts' FFN (expert_ffn.cu) and the dense projections of a decode step
// (dense_decode.cu) launch it. Device code: include from .cu files only.

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "gpu/cuda/chained_launch.cuh"
#include "gpu/cuda/cuda_check.hpp"

namespace volt::cuda {

namespace {

constexpr int warps_per_block = 4;
constexpr int rows_per_warp = 16;

/// Arguments of one decode product (an expert layer's w13 with SwiGLU, or
/// its w2, or one dense matrix).
struct mma_args {
  const void* w; // the layer's matrix, [n_experts, rows_per_expert, K]
  int64_t expert_stride; // elements per expert
  int64_t pair_offset; // SwiGLU: elements from w1 row j to w3 row j
  const float* scales; // int8: [n_experts, scale_stride]; else nullptr
  int64_t scale_stride;
  int64_t scale_pair; // SwiGLU: scale index from w1 row j to w3 row j
  // Both null: one group of all n_rows rows, matrix 0 (a dense product).
  const int32_t* group_expert; // [n_groups]
  const int32_t* group_offsets; // [n_groups + 1]
  // Prefetch the first weights into L2 before waiting for the kernel ahead
  // (chained_launch.cuh): only where the groups, if any, were written by a
  // kernel two or more back in the stream.
  bool prefetch_weights;
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

/// Rounds to the 16-bit activation type of weights W: f16 for int8, bf16
/// otherwise.
template <class W>
__device__ __forceinline__ uint16_t to_activation(float v) {
  if constexpr (sizeof(W) == 1)
    return __half_as_ushort(__float2half_rn(v));
  else
    return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

// The tensor-core instruction for one 16-bit operand type.
#define VOLT_MMA_M16N8K16(type)                                                \
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." type "." type          \
               ".f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "           \
               "{%0, %1, %2, %3};"                                             \
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                \
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1))

/// c += A · B over one m16n8k16 tile in f32, the 16-bit operands in the
/// activation type of weights W (see to_activation).
template <class W>
__device__ __forceinline__ void mma(float (&c)[4], uint32_t a0, uint32_t a1,
                                    uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1) {
  if constexpr (sizeof(W) == 1)
    VOLT_MMA_M16N8K16("f16");
  else
    VOLT_MMA_M16N8K16("bf16");
}
#undef VOLT_MMA_M16N8K16

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
  const bool rows_live = r0 < a.out_rows;
  const bool grouped = a.group_offsets != nullptr;
  int begin = 0;
  int end = static_cast<int>(a.n_rows);
  int64_t e = 0;
  const W* wrow[at][2];
  const int64_t k_begin = blockIdx.z * a.k_per_split;
  auto find_group = [&] {
    if (grouped) {
      begin = a.group_offsets[blockIdx.y];
      end = a.group_offsets[blockIdx.y + 1];
      e = a.group_expert[blockIdx.y];
    }
    const W* wbase = static_cast<const W*>(a.w) + e * a.expert_stride;
#pragma unroll
    for (int t = 0; t < at; ++t) {
      wrow[t][0] = wbase + t * a.pair_offset + (r0 + gid) * a.k
                   + tig * per_thread;
      wrow[t][1] = wrow[t][0] + 8 * a.k;
    }
  };
  if (a.prefetch_weights && rows_live) {
    // The first loop step's weights, while the kernel ahead finishes.
    find_group();
    if (begin < end && e >= 0)
#pragma unroll
      for (int u = 0; u < unroll; ++u)
#pragma unroll
        for (int t = 0; t < at; ++t)
#pragma unroll
          for (int h = 0; h < 2; ++h)
            prefetch_l2(wrow[t][h] + k_begin + u * kstep);
  }
  chain_start();
  if (!rows_live)
    return;
  find_group(); // again: the kernel ahead may have written the groups
  if (begin >= end || e < 0) // no rows, or computed elsewhere
    return;
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
            mma<W>(acc[t][n], af[t][0], af[t][1], af[t][2], af[t][3], b0, b1);
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

/// Launches the kernel for NT token tiles; x_late only from 3 tiles on,
/// where registers, not latency, bound it.
template <class W, int NT, bool Swiglu, int Chunks>
void launch_expert_mma_tiles(const mma_args& a, dim3 grid, bool x_late,
                             cudaStream_t stream) {
  dim3 block(warps_per_block * 32);
  if constexpr (NT >= 3)
    if (x_late)
      return launch_chained(expert_mma_kernel<W, NT, Swiglu, Chunks, true>,
                            grid, block, 0, stream, a);
  launch_chained(expert_mma_kernel<W, NT, Swiglu, Chunks, false>, grid, block,
                 0, stream, a);
}

template <class W, bool Swiglu, int Chunks>
void launch_expert_mma_chunks(const mma_args& a, dim3 grid, int nt,
                              bool x_late, cudaStream_t stream) {
  switch (nt) {
    case 1:
      return launch_expert_mma_tiles<W, 1, Swiglu, Chunks>(a, grid, x_late,
                                                           stream);
    case 2:
      return launch_expert_mma_tiles<W, 2, Swiglu, Chunks>(a, grid, x_late,
                                                           stream);
    case 3:
      return launch_expert_mma_tiles<W, 3, Swiglu, Chunks>(a, grid, x_late,
                                                           stream);
    default:
      return launch_expert_mma_tiles<W, 4, Swiglu, Chunks>(a, grid, x_late,
                                                           stream);
  }
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

} // namespace

} // namespace volt::cuda
