// Paged causal GQA attention, flash-decoding style: one block per (query row,
// KV head, key split) computes the scores of the group's query heads against
// its split of keys tile by tile with an online softmax; with more than one
// split the blocks leave partial maxima, sums and unnormalised outputs in the
// workspace and a second kernel merges them. The launch configuration is a
// function of the shape, n_rows and max_keys only (never of the positions,
// which live on the device), so a captured CUDA graph replays for any
// positions below max_keys.

#include "gpu/cuda/attention.cuh"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "gpu/cuda/bf16_split.cuh"
#include "gpu/cuda/chained_launch.cuh"
#include "gpu/cuda/cuda_check.hpp"

namespace volt::cuda {

namespace {

constexpr int attn_threads = 128;
/// Keys per tile: one per thread while scoring.
constexpr int tile = attn_threads;
/// Blocks the split choice aims at: about eight resident blocks of 128
/// threads on each of an H100's 132 SMs. Fewer (query rows x KV heads)
/// blocks get their key ranges split until they reach it.
constexpr int64_t target_blocks = 1024;
constexpr int max_group = 8;

struct split_plan {
  int64_t keys_per_split = 0;
  int64_t n_splits = 0;
};

split_plan plan_splits(const attention_shape& shape, int64_t n_rows,
                       int64_t max_keys) {
  // No row attends to more keys than the window holds.
  int64_t range = std::max<int64_t>(max_keys, 1);
  if (shape.sliding_window > 0)
    range = std::min(range, shape.sliding_window);
  const int64_t base = std::max<int64_t>(n_rows * shape.n_kv_heads, 1);
  split_plan p;
  p.keys_per_split = tile;
  auto splits = [&] {
    return (range + p.keys_per_split - 1) / p.keys_per_split;
  };
  while (p.keys_per_split < range && base * splits() > target_blocks)
    p.keys_per_split *= 2;
  p.n_splits = splits();
  return p;
}

size_t align_up(size_t x) {
  return (x + 255) / 256 * 256;
}

/// Workspace: [partial outputs | partial maxima | partial sums], each
/// [n_rows, n_heads, n_splits (, head_dim)] f32; nothing for one split.
struct workspace_layout {
  size_t m = 0, l = 0, total = 0;
};

workspace_layout make_layout(const attention_shape& shape, int64_t n_rows,
                             int64_t n_splits) {
  workspace_layout w;
  if (n_splits <= 1)
    return w;
  auto parts = static_cast<size_t>(n_rows * shape.n_heads * n_splits);
  w.m = align_up(sizeof(float) * parts * static_cast<size_t>(shape.head_dim));
  w.l = w.m + align_up(sizeof(float) * parts);
  w.total = w.l + align_up(sizeof(float) * parts);
  return w;
}

struct attn_params {
  const int32_t* rows; // [n_rows] step rows of the blocks, or null: row b
  const float* q;
  const uint16_t* k; // bf16 bits
  const uint16_t* v;
  const uint16_t* k_lo; // what bf16 leaves out of k and v (Lo kernels)
  const uint16_t* v_lo;
  const int32_t* positions;
  const int32_t* row_table;
  const int32_t* block_tables;
  int64_t table_stride;
  int n_heads;
  int n_kv_heads;
  int group;
  int page_size;
  int window;
  int keys_per_split;
  int n_splits;
  float scale;
  float* part_acc; // [n_rows, n_heads, n_splits, head_dim]
  float* part_m; // [n_rows, n_heads, n_splits]
  float* part_l;
  __nv_bfloat16* out; // [n_rows, n_heads, head_dim]
  __nv_bfloat16* out_lo; // the same, what bf16 leaves out of out; or null
};

/// Writes o to out[i] as bf16, and what that leaves out to out_lo[i] when
/// there is an out_lo.
__device__ __forceinline__ void write_out(const attn_params& p, int64_t i,
                                          float o) {
  const uint16_t hi = bf16_bits_of(o);
  reinterpret_cast<uint16_t*>(p.out)[i] = hi;
  if (p.out_lo != nullptr)
    reinterpret_cast<uint16_t*>(p.out_lo)[i] = bf16_rest_bits(o, hi);
}

__device__ __forceinline__ float bf16_lo(uint32_t w) {
  return __uint_as_float(w << 16);
}
__device__ __forceinline__ float bf16_hi(uint32_t w) {
  return __uint_as_float(w & 0xffff0000u);
}

/// This kernel does the following for query row r (blockIdx.x, or
/// rows[blockIdx.x] with a row subset), KV head blockIdx.y and key split
/// blockIdx.z (G >= group: the padded heads score against zeros and are never
/// written):
/// 1. finds the split's keys, [first + split * keys_per_split, ...) within
///    the row's [first, pos]; an empty split writes a neutral partial (max
///    -inf, sum 0), or zeros as the output of a row without keys, and stops;
/// 2. loads the group's query heads into shared memory;
/// 3. per tile of 128 keys: thread j finds key j's cache slot through the
///    block table and scores it against every head (16-byte K loads);
///    block maxima per head; rescales its running sums and outputs by
///    e^(old max - new max); p = e^(score - max) into shared memory;
/// 4. P·V: each thread owns four dimensions of every head for one of the
///    128 / (HD / 4) interleaved key lanes, reading V rows 8 bytes at a time;
/// 5. sums the key lanes' outputs and the threads' softmax sums; one split
///    writes out = acc / sum as bf16, several write acc, max and sum.
/// With Lo, each K and V element is its bf16 plus its rest (k_lo, v_lo).
template <int HD, int G, bool Lo>
__global__ void __launch_bounds__(attn_threads)
  attention_split_kernel(const attn_params p) {
  // Four V dimensions (8 bytes) per thread and key: wide enough to keep
  // several loads in flight per thread, narrow enough for the accumulators
  // of eight heads to stay in registers.
  constexpr int vd = 4;
  constexpr int threads_per_key = HD / vd;
  constexpr int key_lanes = attn_threads / threads_per_key;
  constexpr int n_warps = attn_threads / 32;
  __shared__ __align__(16) float q_s[G * HD];
  __shared__ __align__(16) float p_s[tile * G];
  __shared__ int32_t slot_s[tile];
  __shared__ float red_s[n_warps][G];
  __shared__ __align__(16) float acc_s[key_lanes * G * HD];

  chain_start();
  const int tid = threadIdx.x;
  // The workspace is indexed by the block, q, out and the row arrays by the
  // step row, so a subset needs no more workspace than its own rows.
  const int b = blockIdx.x;
  const int r = p.rows != nullptr ? p.rows[b] : b;
  const int kvh = blockIdx.y;
  const int split = blockIdx.z;
  const int group = p.group;
  const int pos = p.positions[r];
  const int first = p.window > 0 ? max(0, pos - p.window + 1) : 0;
  const int begin = first + split * p.keys_per_split;
  const int end = min(pos + 1, begin + p.keys_per_split); // exclusive
  const int64_t head0 = static_cast<int64_t>(r) * p.n_heads
                        + static_cast<int64_t>(kvh) * group;
  const int64_t part0 = static_cast<int64_t>(b) * p.n_heads
                        + static_cast<int64_t>(kvh) * group;

  if (begin >= end) {
    if (p.n_splits == 1) {
      for (int i = tid; i < group * HD; i += attn_threads)
        write_out(p, head0 * HD + i, 0.0f);
    } else if (tid < group) {
      p.part_m[(part0 + tid) * p.n_splits + split] = -INFINITY;
      p.part_l[(part0 + tid) * p.n_splits + split] = 0.0f;
    }
    return;
  }

  for (int i = tid; i < G * HD; i += attn_threads)
    q_s[i] = i < group * HD ? p.q[head0 * HD + i] : 0.0f;
  const int32_t* table
    = p.block_tables + static_cast<int64_t>(p.row_table[r]) * p.table_stride;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int dim_slot = tid % threads_per_key;
  const int key_lane = tid / threads_per_key;

  float m_run[G], l_part[G], acc[G][vd];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m_run[g] = -INFINITY;
    l_part[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < vd; ++e)
      acc[g][e] = 0.0f;
  }
  __syncthreads();

  for (int t0 = begin; t0 < end; t0 += tile) {
    // Scores: thread tid takes key t0 + tid.
    const int key = t0 + tid;
    const bool valid = key < end;
    float s[G];
    if (valid) {
      const int logical = key / p.page_size;
      const int slot = table[logical] * p.page_size
                       + (key - logical * p.page_size);
      slot_s[tid] = slot;
      const uint4* kp = reinterpret_cast<const uint4*>(
        p.k + (static_cast<int64_t>(slot) * p.n_kv_heads + kvh) * HD);
#pragma unroll
      for (int g = 0; g < G; ++g)
        s[g] = 0.0f;
#pragma unroll
      for (int c = 0; c < HD / 8; ++c) {
        const uint4 kv = kp[c];
        float k8[8] = {bf16_lo(kv.x), bf16_hi(kv.x), bf16_lo(kv.y),
                       bf16_hi(kv.y), bf16_lo(kv.z), bf16_hi(kv.z),
                       bf16_lo(kv.w), bf16_hi(kv.w)};
        if constexpr (Lo) {
          const uint4 kr = reinterpret_cast<const uint4*>(
            p.k_lo + (static_cast<int64_t>(slot) * p.n_kv_heads + kvh) * HD)[c];
          const float r8[8] = {bf16_lo(kr.x), bf16_hi(kr.x), bf16_lo(kr.y),
                               bf16_hi(kr.y), bf16_lo(kr.z), bf16_hi(kr.z),
                               bf16_lo(kr.w), bf16_hi(kr.w)};
#pragma unroll
          for (int e = 0; e < 8; ++e)
            k8[e] += r8[e];
        }
#pragma unroll
        for (int g = 0; g < G; ++g) {
          const float4 qa
            = reinterpret_cast<const float4*>(q_s)[(g * HD + c * 8) / 4];
          const float4 qb
            = reinterpret_cast<const float4*>(q_s)[(g * HD + c * 8) / 4 + 1];
          s[g] += qa.x * k8[0] + qa.y * k8[1] + qa.z * k8[2] + qa.w * k8[3]
                  + qb.x * k8[4] + qb.y * k8[5] + qb.z * k8[6] + qb.w * k8[7];
        }
      }
#pragma unroll
      for (int g = 0; g < G; ++g)
        s[g] *= p.scale;
    } else {
#pragma unroll
      for (int g = 0; g < G; ++g)
        s[g] = -INFINITY;
    }
    // The tile's maximum per head, over the block.
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float mx = s[g];
#pragma unroll
      for (int off = 16; off > 0; off /= 2)
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      if (lane == 0)
        red_s[warp][g] = mx;
    }
    __syncthreads();
    float corr[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float mx = m_run[g];
#pragma unroll
      for (int w = 0; w < n_warps; ++w)
        mx = fmaxf(mx, red_s[w][g]);
      // The tile holds a valid key, so mx is finite and corr is 0 on the
      // first tile (m_run -inf).
      corr[g] = expf(m_run[g] - mx);
      m_run[g] = mx;
      const float pj = valid ? expf(s[g] - mx) : 0.0f;
      l_part[g] = l_part[g] * corr[g] + pj;
      p_s[tid * G + g] = pj;
#pragma unroll
      for (int e = 0; e < vd; ++e)
        acc[g][e] *= corr[g];
    }
    __syncthreads();
    // P·V over the tile's keys, key_lanes keys at a time.
    const int n_keys = min(tile, end - t0);
    const uint16_t* v_head = p.v + static_cast<int64_t>(kvh) * HD
                             + vd * dim_slot;
#pragma unroll 8
    for (int j = key_lane; j < n_keys; j += key_lanes) {
      const int64_t v_at = static_cast<int64_t>(slot_s[j]) * p.n_kv_heads * HD;
      const uint2 vv = *reinterpret_cast<const uint2*>(v_head + v_at);
      float v4[vd] = {bf16_lo(vv.x), bf16_hi(vv.x), bf16_lo(vv.y),
                      bf16_hi(vv.y)};
      if constexpr (Lo) {
        const uint2 vr = *reinterpret_cast<const uint2*>(
          p.v_lo + static_cast<int64_t>(kvh) * HD + vd * dim_slot + v_at);
        v4[0] += bf16_lo(vr.x);
        v4[1] += bf16_hi(vr.x);
        v4[2] += bf16_lo(vr.y);
        v4[3] += bf16_hi(vr.y);
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float pg = p_s[j * G + g];
#pragma unroll
        for (int e = 0; e < vd; ++e)
          acc[g][e] += pg * v4[e];
      }
    }
    __syncthreads(); // p_s, slot_s and red_s are rewritten by the next tile
  }

  // Softmax sums over the block; outputs over the key lanes.
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float sum = l_part[g];
#pragma unroll
    for (int off = 16; off > 0; off /= 2)
      sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0)
      red_s[warp][g] = sum;
    reinterpret_cast<float4*>(
      acc_s)[((key_lane * G + g) * HD + vd * dim_slot) / 4]
      = make_float4(acc[g][0], acc[g][1], acc[g][2], acc[g][3]);
  }
  __syncthreads();
  for (int i = tid; i < group * HD; i += attn_threads) {
    const int g = i / HD;
    float a = 0.0f;
#pragma unroll
    for (int kl = 0; kl < key_lanes; ++kl)
      a += acc_s[kl * G * HD + i];
    if (p.n_splits == 1) {
      float l = 0.0f;
#pragma unroll
      for (int w = 0; w < n_warps; ++w)
        l += red_s[w][g];
      write_out(p, head0 * HD + i, a / l);
    } else {
      p.part_acc[((part0 + g) * p.n_splits + split) * HD + i % HD] = a;
    }
  }
  if (p.n_splits > 1) {
#pragma unroll
    for (int g = 0; g < G; ++g)
      if (tid == g && g < group) {
        float l = 0.0f;
#pragma unroll
        for (int w = 0; w < n_warps; ++w)
          l += red_s[w][g];
        p.part_m[(part0 + g) * p.n_splits + split] = m_run[g];
        p.part_l[(part0 + g) * p.n_splits + split] = l;
      }
  }
}

/// This kernel does the following for (block row b, head h) blockIdx.x, one
/// thread per dimension:
/// 1. the largest of the splits' maxima M (neutral splits are -inf);
/// 2. out[r, h] = Σ e^(m_s − M) acc_s / Σ e^(m_s − M) l_s over the
///    non-neutral splits, as bf16 (and its rest, with out_lo), r = rows[b]
///    with a row subset, else b; a row without keys (every split neutral)
///    gets zeros.
__global__ void attention_merge_kernel(const attn_params p, int head_dim) {
  chain_start();
  const int64_t rh = blockIdx.x;
  const int n_heads = p.n_heads;
  const int n_splits = p.n_splits;
  const int64_t b = rh / n_heads;
  const int64_t out_rh = (p.rows != nullptr ? p.rows[b] : b) * n_heads
                         + rh % n_heads;
  const int d = threadIdx.x;
  const float* part_acc = p.part_acc;
  const float* m = p.part_m + rh * n_splits;
  const float* l = p.part_l + rh * n_splits;
  float big = -INFINITY;
  for (int s = 0; s < n_splits; ++s)
    big = fmaxf(big, m[s]);
  float num = 0.0f;
  float den = 0.0f;
  if (big != -INFINITY)
    for (int s = 0; s < n_splits; ++s) {
      if (m[s] == -INFINITY)
        continue;
      const float w = expf(m[s] - big);
      den += w * l[s];
      num += w * part_acc[(rh * n_splits + s) * head_dim + d];
    }
  write_out(p, out_rh * head_dim + d, den > 0.0f ? num / den : 0.0f);
}

template <int HD, int G>
void launch_split(const attn_params& p, int64_t n_rows, cudaStream_t stream) {
  dim3 grid(static_cast<unsigned>(n_rows), static_cast<unsigned>(p.n_kv_heads),
            static_cast<unsigned>(p.n_splits));
  if (p.k_lo != nullptr)
    launch_chained(attention_split_kernel<HD, G, true>, grid, attn_threads, 0,
                   stream, p);
  else
    launch_chained(attention_split_kernel<HD, G, false>, grid, attn_threads, 0,
                   stream, p);
}

template <int HD>
void launch_for_group(const attn_params& p, int64_t n_rows,
                      cudaStream_t stream) {
  // The group rounds up to a power of two; the padded heads are masked.
  if (p.group <= 1)
    launch_split<HD, 1>(p, n_rows, stream);
  else if (p.group <= 2)
    launch_split<HD, 2>(p, n_rows, stream);
  else if (p.group <= 4)
    launch_split<HD, 4>(p, n_rows, stream);
  else
    launch_split<HD, max_group>(p, n_rows, stream);
}

[[noreturn]] void reject(const std::string& why) {
  throw cuda_error("paged_attention: " + why);
}

} // namespace

bool attention_head_dim_supported(int64_t head_dim) {
  return head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128;
}

size_t paged_attention_workspace_bytes(const attention_shape& shape,
                                       int64_t n_rows, int64_t max_keys) {
  auto plan = plan_splits(shape, n_rows, max_keys);
  return make_layout(shape, n_rows, plan.n_splits).total;
}

void paged_attention(const float* q, const __nv_bfloat16* k_cache,
                     const __nv_bfloat16* v_cache, const split_kv& rest,
                     const attention_batch& batch,
                     const attention_shape& shape, void* workspace,
                     size_t workspace_bytes, __nv_bfloat16* out,
                     cudaStream_t stream) {
  if (!attention_head_dim_supported(shape.head_dim))
    reject("head_dim " + std::to_string(shape.head_dim)
           + " (16, 32, 64 or 128)");
  if (shape.n_kv_heads < 1 || shape.n_heads % shape.n_kv_heads != 0
      || shape.n_heads / shape.n_kv_heads > max_group)
    reject("n_heads " + std::to_string(shape.n_heads) + " / n_kv_heads "
           + std::to_string(shape.n_kv_heads) + " (group 1 to 8)");
  if (shape.page_size < 1 || shape.sliding_window < 0 || batch.max_keys < 1
      || batch.max_keys > INT32_MAX)
    reject("page_size " + std::to_string(shape.page_size) + ", window "
           + std::to_string(shape.sliding_window) + ", max_keys "
           + std::to_string(batch.max_keys));
  if (reinterpret_cast<uintptr_t>(k_cache) % 16 != 0
      || reinterpret_cast<uintptr_t>(v_cache) % 16 != 0
      || reinterpret_cast<uintptr_t>(rest.k_lo) % 16 != 0
      || reinterpret_cast<uintptr_t>(rest.v_lo) % 16 != 0)
    reject("K/V caches must be 16-byte aligned");
  if ((rest.k_lo == nullptr) != (rest.v_lo == nullptr)
      || (rest.k_lo == nullptr) != (rest.out_lo == nullptr))
    reject("k_lo, v_lo and out_lo go together");
  if (batch.n_rows == 0)
    return;
  const auto plan = plan_splits(shape, batch.n_rows, batch.max_keys);
  const auto layout = make_layout(shape, batch.n_rows, plan.n_splits);
  if (workspace_bytes < layout.total)
    reject("workspace of " + std::to_string(workspace_bytes) + " bytes, need "
           + std::to_string(layout.total));
  if (plan.n_splits > 65535)
    reject("max_keys " + std::to_string(batch.max_keys) + " needs "
           + std::to_string(plan.n_splits) + " splits, at most 65535");
  auto* base = static_cast<char*>(workspace);
  attn_params p{};
  p.rows = batch.rows;
  p.q = q;
  p.k = reinterpret_cast<const uint16_t*>(k_cache);
  p.v = reinterpret_cast<const uint16_t*>(v_cache);
  p.k_lo = reinterpret_cast<const uint16_t*>(rest.k_lo);
  p.v_lo = reinterpret_cast<const uint16_t*>(rest.v_lo);
  p.out_lo = rest.out_lo;
  p.positions = batch.positions;
  p.row_table = batch.row_table;
  p.block_tables = batch.block_tables;
  p.table_stride = batch.table_stride;
  p.n_heads = static_cast<int>(shape.n_heads);
  p.n_kv_heads = static_cast<int>(shape.n_kv_heads);
  p.group = static_cast<int>(shape.n_heads / shape.n_kv_heads);
  p.page_size = static_cast<int>(shape.page_size);
  p.window
    = static_cast<int>(std::min<int64_t>(shape.sliding_window, INT32_MAX));
  p.keys_per_split = static_cast<int>(plan.keys_per_split);
  p.n_splits = static_cast<int>(plan.n_splits);
  p.scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  p.part_acc = plan.n_splits > 1 ? reinterpret_cast<float*>(base) : nullptr;
  p.part_m = plan.n_splits > 1 ? reinterpret_cast<float*>(base + layout.m)
                               : nullptr;
  p.part_l = plan.n_splits > 1 ? reinterpret_cast<float*>(base + layout.l)
                               : nullptr;
  p.out = out;
  switch (shape.head_dim) {
    case 16: launch_for_group<16>(p, batch.n_rows, stream); break;
    case 32: launch_for_group<32>(p, batch.n_rows, stream); break;
    case 64: launch_for_group<64>(p, batch.n_rows, stream); break;
    default: launch_for_group<128>(p, batch.n_rows, stream); break;
  }
  if (plan.n_splits > 1) {
    launch_chained(attention_merge_kernel,
                   static_cast<unsigned>(batch.n_rows * shape.n_heads),
                   static_cast<unsigned>(shape.head_dim), 0, stream, p,
                   static_cast<int>(shape.head_dim));
  }
}

} // namespace volt::cuda
