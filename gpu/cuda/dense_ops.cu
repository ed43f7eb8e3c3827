// The dense ops of a step (embedding, RMSNorm, rotary embedding with the KV
// write, argmax) and the weight conversions. Where the CPU twin's result is
// an exact function of the inputs (rotation, conversions, int8 quantisation)
// the kernels compute it with explicitly rounded operations (__fmul_rn,
// __fdiv_rn, ...), so that nvcc can neither contract them into FMAs nor swap
// in approximations, and the results stay bit-identical to the CPU's.

#include "gpu/cuda/dense_ops.cuh"

#include <algorithm>
#include <climits>
#include <string>

#include "gpu/cuda/bf16_split.cuh"
#include "gpu/cuda/chained_launch.cuh"
#include "gpu/cuda/cuda_check.hpp"

namespace volt::cuda {

namespace {

constexpr int threads = 256;

unsigned blocks_for(int64_t n, int per_block = threads) {
  return static_cast<unsigned>((n + per_block - 1) / per_block);
}

bool aligned(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

/// Bytes of the float types the conversions take (volt_cuda does not link
/// model/dtype.cpp, which volt_core holds).
size_t float_bytes(dtype type) {
  return type == dtype::f32 ? 4 : 2;
}

[[noreturn]] void unsupported(const char* op, dtype type) {
  throw cuda_error(std::string(op) + ": unsupported dtype "
                   + std::to_string(static_cast<int>(type))
                   + " (f32, f16 or bf16)");
}

// -- bit-exact conversions (device twins of model/dtype.cpp) ------------------

/// f16 bits to f32 bits exactly as volt::f16_to_f32 (NaN payloads included;
/// the hardware conversion may canonicalise them).
__device__ __forceinline__ uint32_t f16_to_f32_bits(uint16_t x) {
  uint32_t sign = static_cast<uint32_t>(x & 0x8000u) << 16;
  uint32_t exp = (x >> 10) & 0x1fu;
  uint32_t mant = x & 0x3ffu;
  if (exp == 0x1f)
    return sign | 0x7f800000u | (mant << 13);
  if (exp == 0) {
    if (mant == 0)
      return sign;
    // Subnormal: shift the leading one (bit 9 - e) into the implicit bit.
    int e = __clz(mant) - 22; // mant < 2^10: clz >= 22
    mant = (mant << (e + 1)) & 0x3ffu;
    return sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (mant << 13);
  }
  return sign | ((exp + 127 - 15) << 23) | (mant << 13);
}

/// Element i of a checkpoint tensor as f32 bits. `misaligned` (uniform over
/// the grid) says the base is not aligned to the element size: safetensors
/// offsets are arbitrary, so an f32 tensor can start at any byte.
template <dtype Type>
__device__ __forceinline__ uint32_t load_f32_bits(const uint8_t* p, int64_t i,
                                                  bool misaligned) {
  if constexpr (Type == dtype::f32) {
    if (!misaligned)
      return reinterpret_cast<const uint32_t*>(p)[i];
    const uint8_t* b = p + 4 * i;
    return b[0] | (uint32_t{b[1]} << 8) | (uint32_t{b[2]} << 16)
           | (uint32_t{b[3]} << 24);
  } else {
    uint16_t h;
    if (!misaligned) {
      h = reinterpret_cast<const uint16_t*>(p)[i];
    } else {
      const uint8_t* b = p + 2 * i;
      h = static_cast<uint16_t>(b[0] | (b[1] << 8));
    }
    if constexpr (Type == dtype::f16)
      return f16_to_f32_bits(h);
    else
      return uint32_t{h} << 16;
  }
}

// -- embedding ----------------------------------------------------------------

/// This kernel does the following for token blockIdx.x:
/// 1. reads the token's id once;
/// 2. widens Vec bf16 of the table row per thread (16-byte loads when the
///    row and the output allow) and writes them as f32.
template <int Vec>
__global__ void
embedding_kernel(const __nv_bfloat16* __restrict__ table, int64_t hidden,
                 const int32_t* __restrict__ ids, float* __restrict__ out) {
  const int64_t t = blockIdx.x;
  const int64_t i
    = (static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x) * Vec;
  if (i >= hidden)
    return;
  const __nv_bfloat16* src = table + static_cast<int64_t>(ids[t]) * hidden + i;
  float* dst = out + t * hidden + i;
  if constexpr (Vec == 8) {
    uint4 v = *reinterpret_cast<const uint4*>(src);
    uint32_t w[4] = {v.x, v.y, v.z, v.w};
    float f[8];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      f[2 * j] = __uint_as_float(w[j] << 16);
      f[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
    }
    reinterpret_cast<float4*>(dst)[0] = make_float4(f[0], f[1], f[2], f[3]);
    reinterpret_cast<float4*>(dst)[1] = make_float4(f[4], f[5], f[6], f[7]);
  } else {
    *dst = __bfloat162float(*src);
  }
}

// -- rms_norm -----------------------------------------------------------------

/// Reduces `v` over the block with `op` (blockDim.x a multiple of 32, at
/// most 1024); every thread gets the result. `scratch` holds 32 floats.
template <class Op>
__device__ float block_reduce(float v, float* scratch, float identity, Op op) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2)
    v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (lane == 0)
    scratch[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x / 32) ? scratch[lane] : identity;
#pragma unroll
  for (int off = 16; off > 0; off /= 2)
    v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

/// This kernel does the following for output row blockIdx.x:
/// 1. picks the input row (rows[r] or r);
/// 2. sums the squares of the row in f32 (Vec elements per load), reduced
///    over the block;
/// 3. inv = 1 / sqrt(mean + eps) and writes weight * (x * inv), the CPU
///    twin's product order, to the bf16 and/or f32 outputs.
template <int Vec>
__global__ void rms_norm_kernel(float* __restrict__ x,
                                const int32_t* __restrict__ rows,
                                const float* __restrict__ parts,
                                int64_t n_parts, int64_t part_stride,
                                const float* __restrict__ weight, int64_t dim,
                                float eps, __nv_bfloat16* __restrict__ out_bf16,
                                __nv_bfloat16* __restrict__ out_lo,
                                float* __restrict__ out_f32) {
  __shared__ float scratch[32];
  chain_start();
  const int64_t r = blockIdx.x;
  const int64_t src_row = rows != nullptr ? rows[r] : r;
  float* xr = x + src_row * dim;
  const int64_t n = dim / Vec;
  float sq = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    if constexpr (Vec == 4) {
      float4 v = reinterpret_cast<const float4*>(xr)[i];
      if (n_parts > 0) {
        float4 sum = reinterpret_cast<const float4*>(parts + r * dim)[i];
        for (int64_t p = 1; p < n_parts; ++p) {
          float4 more = reinterpret_cast<const float4*>(parts + p * part_stride
                                                        + r * dim)[i];
          sum = make_float4(__fadd_rn(sum.x, more.x), __fadd_rn(sum.y, more.y),
                            __fadd_rn(sum.z, more.z), __fadd_rn(sum.w, more.w));
        }
        v = make_float4(__fadd_rn(v.x, sum.x), __fadd_rn(v.y, sum.y),
                        __fadd_rn(v.z, sum.z), __fadd_rn(v.w, sum.w));
        reinterpret_cast<float4*>(xr)[i] = v;
      }
      sq += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    } else {
      float v = xr[i];
      if (n_parts > 0) {
        float sum = parts[r * dim + i];
        for (int64_t p = 1; p < n_parts; ++p)
          sum = __fadd_rn(sum, parts[p * part_stride + r * dim + i]);
        v = __fadd_rn(v, sum);
        xr[i] = v;
      }
      sq += v * v;
    }
  }
  sq = block_reduce(sq, scratch, 0.0f, [](float x, float y) { return x + y; });
  const float inv = __fdiv_rn(
    1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(sq, static_cast<float>(dim)), eps)));
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float v[Vec];
    float w[Vec];
    if constexpr (Vec == 4) {
      float4 a = reinterpret_cast<const float4*>(xr)[i];
      float4 b = reinterpret_cast<const float4*>(weight)[i];
      v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
      w[0] = b.x, w[1] = b.y, w[2] = b.z, w[3] = b.w;
    } else {
      v[0] = xr[i];
      w[0] = weight[i];
    }
#pragma unroll
    for (int j = 0; j < Vec; ++j)
      v[j] = __fmul_rn(w[j], __fmul_rn(v[j], inv));
    if (out_f32 != nullptr) {
      if constexpr (Vec == 4)
        reinterpret_cast<float4*>(out_f32 + r * dim)[i]
          = make_float4(v[0], v[1], v[2], v[3]);
      else
        out_f32[r * dim + i] = v[0];
    }
    if (out_bf16 != nullptr) {
      uint16_t hi[Vec];
#pragma unroll
      for (int j = 0; j < Vec; ++j)
        hi[j] = bf16_bits_of(v[j]);
      if constexpr (Vec == 4) {
        uint2 packed;
        packed.x = hi[0] | (uint32_t{hi[1]} << 16);
        packed.y = hi[2] | (uint32_t{hi[3]} << 16);
        reinterpret_cast<uint2*>(out_bf16 + r * dim)[i] = packed;
      } else {
        reinterpret_cast<uint16_t*>(out_bf16)[r * dim + i] = hi[0];
      }
      if (out_lo != nullptr) {
        if constexpr (Vec == 4) {
          uint2 packed;
          packed.x = bf16_rest_bits(v[0], hi[0])
                     | (uint32_t{bf16_rest_bits(v[1], hi[1])} << 16);
          packed.y = bf16_rest_bits(v[2], hi[2])
                     | (uint32_t{bf16_rest_bits(v[3], hi[3])} << 16);
          reinterpret_cast<uint2*>(out_lo + r * dim)[i] = packed;
        } else {
          reinterpret_cast<uint16_t*>(out_lo)[r * dim + i]
            = bf16_rest_bits(v[0], hi[0]);
        }
      }
    }
  }
}

// -- rope + KV write ----------------------------------------------------------

/// This kernel does the following for token blockIdx.x, one item per thread
/// (the items spread over blockIdx.y: a decode token alone fills several
/// multiprocessors instead of looping in one block):
/// 1. items [0, (n_heads + n_kv_heads) * half) are the rotation pairs
///    (i, i + half) of every q and k head: each thread rotates its pair
///    with the table's cos/sin at the token's position, in the CPU twin's
///    order without contraction (a·c − b·s, b·c + a·s);
/// 2. rotated q goes to q, rotated k to the token's cache slot as bf16
///    (and its rest to k_lo, when given);
/// 3. the remaining n_kv_heads * head_dim items copy v to the slot as bf16
///    (and its rest to v_lo).
/// A negative slot (a padding row) writes no K/V.
__global__ void rope_kv_write_kernel(
  const float* __restrict__ qkv, int64_t qkv_parts, int64_t part_stride,
  const int32_t* __restrict__ positions,
  const int32_t* __restrict__ slots, const float* __restrict__ rope_cos,
  const float* __restrict__ rope_sin, int n_heads, int n_kv_heads, int head_dim,
  float* __restrict__ q, uint16_t* __restrict__ k_cache,
  uint16_t* __restrict__ v_cache, uint16_t* __restrict__ k_lo,
  uint16_t* __restrict__ v_lo) {
  chain_start();
  const int64_t t = blockIdx.x;
  const int half = head_dim / 2;
  const int64_t width = static_cast<int64_t>(n_heads + 2 * n_kv_heads)
                        * head_dim;
  const float* row = qkv + t * width;
  // Element i of the token's q/k/v: its partial sums added in order.
  auto src = [&](int64_t i) {
    float v = row[i];
    for (int64_t p = 1; p < qkv_parts; ++p)
      v = __fadd_rn(v, row[p * part_stride + i]);
    return v;
  };
  const int64_t pos = positions[t];
  const int64_t slot = slots[t];
  const int64_t kv_row = slot * n_kv_heads * head_dim;
  const float* cos_pos = rope_cos + pos * half;
  const float* sin_pos = rope_sin + pos * half;
  const int n_pairs = (n_heads + n_kv_heads) * half;
  const int n_items = n_pairs + n_kv_heads * head_dim;
  const int item = blockIdx.y * blockDim.x + threadIdx.x;
  if (item < n_items) {
    if (item < n_pairs) {
      const int head = item / half;
      const int i = item % half;
      const float a = src(head * head_dim + i);
      const float b = src(head * head_dim + i + half);
      const float c = cos_pos[i];
      const float s = sin_pos[i];
      const float lo = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
      const float hi = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
      if (head < n_heads) {
        float* dst = q + (t * n_heads + head) * head_dim;
        dst[i] = lo;
        dst[i + half] = hi;
      } else if (slot >= 0) {
        const int64_t at = kv_row + (head - n_heads) * head_dim + i;
        const uint16_t a_hi = bf16_bits_of(lo);
        const uint16_t b_hi = bf16_bits_of(hi);
        k_cache[at] = a_hi;
        k_cache[at + half] = b_hi;
        if (k_lo != nullptr) {
          k_lo[at] = bf16_rest_bits(lo, a_hi);
          k_lo[at + half] = bf16_rest_bits(hi, b_hi);
        }
      }
    } else if (slot >= 0) {
      const int j = item - n_pairs;
      const float x
        = src(static_cast<int64_t>(n_heads + n_kv_heads) * head_dim + j);
      const uint16_t x_hi = bf16_bits_of(x);
      v_cache[kv_row + j] = x_hi;
      if (v_lo != nullptr)
        v_lo[kv_row + j] = bf16_rest_bits(x, x_hi);
    }
  }
}

// -- argmax -------------------------------------------------------------------

/// (value, index) with the larger value winning, the lower index among equal
/// values; the empty candidate is (-inf, INT_MAX), so a real -inf beats it.
__device__ __forceinline__ void take_better(float& v, int& i, float ov,
                                            int oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

constexpr int argmax_threads = 1024;

/// This kernel does the following for row blockIdx.x:
/// 1. each thread scans its elements in ascending order (float4 loads when
///    the row allows), skipping NaN and keeping the first of its largest,
///    and notes whether it saw a NaN or an infinity;
/// 2. a block-wide OR of those notes, then warp and block reduction of
///    (value, index) pairs;
/// 3. writes the index, or -1 when the row holds a NaN or an infinity (the
///    engine then fails the request instead of emitting a token).
template <int Vec>
__global__ void __launch_bounds__(argmax_threads)
  argmax_rows_kernel(const float* __restrict__ logits, int64_t vocab,
                     int32_t* __restrict__ out) {
  __shared__ float best_v[argmax_threads / 32];
  __shared__ int best_i[argmax_threads / 32];
  chain_start();
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  float v = -INFINITY;
  int idx = INT_MAX;
  int non_finite = 0;
  const int64_t n = vocab / Vec;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    float x[Vec];
    if constexpr (Vec == 4) {
      float4 f = reinterpret_cast<const float4*>(row)[c];
      x[0] = f.x, x[1] = f.y, x[2] = f.z, x[3] = f.w;
    } else {
      x[0] = row[c];
    }
#pragma unroll
    for (int j = 0; j < Vec; ++j) {
      non_finite |= !isfinite(x[j]);
      if (x[j] > v || (x[j] == v && idx == INT_MAX)) { // NaN compares false
        v = x[j];
        idx = static_cast<int>(c * Vec + j);
      }
    }
  }
  // Every thread of the block reaches this barrier.
  non_finite = __syncthreads_or(non_finite);
#pragma unroll
  for (int off = 16; off > 0; off /= 2)
    take_better(v, idx, __shfl_xor_sync(0xffffffffu, v, off),
                __shfl_xor_sync(0xffffffffu, idx, off));
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (lane == 0) {
    best_v[warp] = v;
    best_i[warp] = idx;
  }
  __syncthreads();
  if (warp != 0)
    return;
  const int n_warps = blockDim.x / 32;
  v = lane < n_warps ? best_v[lane] : -INFINITY;
  idx = lane < n_warps ? best_i[lane] : INT_MAX;
#pragma unroll
  for (int off = 16; off > 0; off /= 2)
    take_better(v, idx, __shfl_xor_sync(0xffffffffu, v, off),
                __shfl_xor_sync(0xffffffffu, idx, off));
  if (lane == 0)
    out[blockIdx.x] = non_finite ? -1 : (idx == INT_MAX ? 0 : idx);
}

// -- conversions --------------------------------------------------------------

/// Elementwise: element i of `src` (type Type) to bf16 (ToBf16) or f32,
/// bit for bit as model/dtype.cpp converts it.
template <dtype Type, bool ToBf16>
__global__ void convert_kernel(const uint8_t* __restrict__ src, int64_t n,
                               bool misaligned, void* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += stride) {
    if constexpr (ToBf16 && Type == dtype::bf16) {
      uint16_t h = misaligned
                     ? static_cast<uint16_t>(src[2 * i] | (src[2 * i + 1] << 8))
                     : reinterpret_cast<const uint16_t*>(src)[i];
      static_cast<uint16_t*>(out)[i] = h;
    } else {
      uint32_t bits = load_f32_bits<Type>(src, i, misaligned);
      if constexpr (ToBf16)
        static_cast<uint16_t*>(out)[i] = bf16_bits_of(__uint_as_float(bits));
      else
        static_cast<uint32_t*>(out)[i] = bits;
    }
  }
}

// -- int8 quantisation --------------------------------------------------------

constexpr int quant_threads = 512;

/// This kernel does the following for row blockIdx.x:
/// 1. max |w| over the row (the maximum is exact in any order; NaN is
///    skipped as std::max skips it in the CPU twin);
/// 2. scale = max / 127 with IEEE division, written by thread 0;
/// 3. q = clamp(rint(w / scale), -127, 127), IEEE division and
///    round-half-even as std::nearbyint, 0 for the whole row if scale is 0.
template <dtype Type>
__global__ void __launch_bounds__(quant_threads)
  quantize_int8_rows_kernel(const uint8_t* __restrict__ src, int64_t cols,
                            bool misaligned, int8_t* __restrict__ q,
                            float* __restrict__ scales) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const int64_t base = r * cols;
  float m = 0.0f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    m = fmaxf(m, fabsf(__uint_as_float(
                   load_f32_bits<Type>(src, base + c, misaligned))));
  m = block_reduce(m, scratch, 0.0f,
                   [](float x, float y) { return fmaxf(x, y); });
  const float scale = __fdiv_rn(m, 127.0f);
  if (threadIdx.x == 0)
    scales[r] = scale;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float w = __uint_as_float(load_f32_bits<Type>(src, base + c, misaligned));
    float v = scale > 0 ? rintf(__fdiv_rn(w, scale)) : 0.0f;
    v = v < -127.0f ? -127.0f : (127.0f < v ? 127.0f : v);
    q[base + c] = static_cast<int8_t>(__float2int_rz(v));
  }
}

// -- launchers ----------------------------------------------------------------

template <bool ToBf16>
void launch_convert(dtype type, const void* src, int64_t n, void* out,
                    cudaStream_t stream) {
  if (n == 0)
    return;
  auto p = static_cast<const uint8_t*>(src);
  const bool misaligned = !aligned(src, float_bytes(type));
  // Grid-stride: enough blocks to fill the GPU, fewer than one per 256.
  const unsigned blocks = std::min<unsigned>(blocks_for(n), 65536u);
  switch (type) {
    case dtype::f32:
      convert_kernel<dtype::f32, ToBf16>
        <<<blocks, threads, 0, stream>>>(p, n, misaligned, out);
      break;
    case dtype::f16:
      convert_kernel<dtype::f16, ToBf16>
        <<<blocks, threads, 0, stream>>>(p, n, misaligned, out);
      break;
    case dtype::bf16:
      convert_kernel<dtype::bf16, ToBf16>
        <<<blocks, threads, 0, stream>>>(p, n, misaligned, out);
      break;
    default: unsupported(ToBf16 ? "to_bf16" : "to_f32", type);
  }
  CUDA_CHECK_LAUNCH(convert_kernel);
}

template <dtype Type>
void launch_quantize(const void* src, int64_t rows, int64_t cols, int8_t* q,
                     float* scales, cudaStream_t stream) {
  const bool misaligned = !aligned(src, float_bytes(Type));
  quantize_int8_rows_kernel<Type>
    <<<static_cast<unsigned>(rows), quant_threads, 0, stream>>>(
      static_cast<const uint8_t*>(src), cols, misaligned, q, scales);
  CUDA_CHECK_LAUNCH(quantize_int8_rows_kernel);
}

} // namespace

void embedding(const __nv_bfloat16* table, int64_t hidden, const int32_t* ids,
               int64_t n_tokens, float* out, cudaStream_t stream) {
  if (n_tokens == 0 || hidden == 0)
    return;
  if (hidden % 8 == 0 && aligned(table, 16) && aligned(out, 16)) {
    dim3 grid(static_cast<unsigned>(n_tokens), blocks_for(hidden / 8));
    embedding_kernel<8><<<grid, threads, 0, stream>>>(table, hidden, ids, out);
  } else {
    dim3 grid(static_cast<unsigned>(n_tokens), blocks_for(hidden));
    embedding_kernel<1><<<grid, threads, 0, stream>>>(table, hidden, ids, out);
  }
  CUDA_CHECK_LAUNCH(embedding_kernel);
}

namespace {

void launch_rms_norm(float* x, const int32_t* rows, const float* parts,
                     int64_t n_parts, const float* weight, int64_t n_rows,
                     int64_t dim, float eps, __nv_bfloat16* out_bf16,
                     __nv_bfloat16* out_lo, float* out_f32,
                     cudaStream_t stream) {
  if (n_rows == 0 || dim == 0)
    return;
  if (out_lo != nullptr && out_bf16 == nullptr)
    throw cuda_error("rms_norm: out_lo needs out_bf16");
  // One block per row; 256 threads reach 4096-wide rows in 4 float4 loads.
  const bool vec = dim % 4 == 0 && aligned(x, 16) && aligned(weight, 16)
                   && aligned(out_f32, 16) && aligned(out_bf16, 8)
                   && aligned(out_lo, 8) && aligned(parts, 16);
  const int block = dim <= 128 ? 32 : dim <= 512 ? 128 : threads;
  const int64_t stride = n_rows * dim;
  if (vec)
    launch_chained(rms_norm_kernel<4>, static_cast<unsigned>(n_rows), block, 0,
                   stream, x, rows, parts, n_parts, stride, weight, dim, eps,
                   out_bf16, out_lo, out_f32);
  else
    launch_chained(rms_norm_kernel<1>, static_cast<unsigned>(n_rows), block, 0,
                   stream, x, rows, parts, n_parts, stride, weight, dim, eps,
                   out_bf16, out_lo, out_f32);
}

} // namespace

void rms_norm(const float* x, const int32_t* rows, const float* weight,
              int64_t n_rows, int64_t dim, float eps, __nv_bfloat16* out_bf16,
              __nv_bfloat16* out_lo, float* out_f32, cudaStream_t stream) {
  // Without parts the kernel only reads x.
  launch_rms_norm(const_cast<float*>(x), rows, nullptr, 0, weight, n_rows, dim,
                  eps, out_bf16, out_lo, out_f32, stream);
}

void add_rms_norm(float* x, const float* parts, int64_t n_parts,
                  const float* weight, int64_t n_rows, int64_t dim, float eps,
                  __nv_bfloat16* out_bf16, __nv_bfloat16* out_lo,
                  float* out_f32, cudaStream_t stream) {
  if (n_parts < 1)
    throw cuda_error("add_rms_norm: needs at least one part");
  launch_rms_norm(x, nullptr, parts, n_parts, weight, n_rows, dim, eps,
                  out_bf16, out_lo, out_f32, stream);
}

void rope_kv_write(const float* qkv, int64_t qkv_parts,
                   const int32_t* positions,
                   const int32_t* slots, const float* rope_cos,
                   const float* rope_sin, const qkv_layout& layout,
                   int64_t n_tokens, float* q, __nv_bfloat16* k_cache,
                   __nv_bfloat16* v_cache, __nv_bfloat16* k_lo,
                   __nv_bfloat16* v_lo, cudaStream_t stream) {
  if ((k_lo == nullptr) != (v_lo == nullptr))
    throw cuda_error("rope_kv_write: k_lo and v_lo go together");
  if (layout.head_dim <= 0 || layout.head_dim % 2 != 0 || layout.n_heads <= 0
      || layout.n_kv_heads <= 0)
    throw cuda_error("rope_kv_write: bad layout (head_dim "
                     + std::to_string(layout.head_dim) + ")");
  if (qkv_parts < 1)
    throw cuda_error("rope_kv_write: qkv_parts must be at least 1");
  if (n_tokens == 0)
    return;
  const auto n_items = (layout.n_heads + layout.n_kv_heads) * layout.head_dim / 2
                       + layout.n_kv_heads * layout.head_dim;
  const auto width = (layout.n_heads + 2 * layout.n_kv_heads) * layout.head_dim;
  dim3 grid(static_cast<unsigned>(n_tokens),
            static_cast<unsigned>((n_items + threads - 1) / threads));
  launch_chained(
    rope_kv_write_kernel, grid, threads, 0, stream, qkv, qkv_parts,
    n_tokens * width, positions, slots, rope_cos, rope_sin,
    static_cast<int>(layout.n_heads), static_cast<int>(layout.n_kv_heads),
    static_cast<int>(layout.head_dim), q, reinterpret_cast<uint16_t*>(k_cache),
    reinterpret_cast<uint16_t*>(v_cache), reinterpret_cast<uint16_t*>(k_lo),
    reinterpret_cast<uint16_t*>(v_lo));
}

void argmax_rows(const float* logits, int64_t n_rows, int64_t vocab,
                 int32_t* out, cudaStream_t stream) {
  if (vocab <= 0 || vocab > INT_MAX - 4)
    throw cuda_error("argmax_rows: vocab " + std::to_string(vocab));
  if (n_rows == 0)
    return;
  // Short rows need no 32 warps: a block of at least one warp per 128 logits.
  const int block = static_cast<int>(std::min<int64_t>(
    argmax_threads, std::max<int64_t>(32, (vocab + 127) / 128 * 32)));
  if (vocab % 4 == 0 && aligned(logits, 16))
    launch_chained(argmax_rows_kernel<4>, static_cast<unsigned>(n_rows), block,
                   0, stream, logits, vocab, out);
  else
    launch_chained(argmax_rows_kernel<1>, static_cast<unsigned>(n_rows), block,
                   0, stream, logits, vocab, out);
}

void to_bf16(dtype type, const void* src, int64_t n, __nv_bfloat16* out,
             cudaStream_t stream) {
  launch_convert<true>(type, src, n, out, stream);
}

void to_f32(dtype type, const void* src, int64_t n, float* out,
            cudaStream_t stream) {
  launch_convert<false>(type, src, n, out, stream);
}

void quantize_int8_rows(dtype type, const void* src, int64_t rows, int64_t cols,
                        int8_t* q, float* scales, cudaStream_t stream) {
  if (rows == 0)
    return;
  switch (type) {
    case dtype::f32:
      launch_quantize<dtype::f32>(src, rows, cols, q, scales, stream);
      return;
    case dtype::f16:
      launch_quantize<dtype::f16>(src, rows, cols, q, scales, stream);
      return;
    case dtype::bf16:
      launch_quantize<dtype::bf16>(src, rows, cols, q, scales, stream);
      return;
    default: unsupported("quantize_int8_rows", type);
  }
}

} // namespace volt::cuda
