// Prefill attention on the tensor cores, FlashAttention-2 style: one block
// per (query tile, query head), four warps of 16 query rows each, walking the
// tile's keys in tiles of 64 from the diagonal down. S = Q·Kᵀ and O += P·V
// are mma.sync m16n8k16 bf16 products with f32 accumulators; the online
// softmax stays in registers (the S accumulators become the P operand
// without moving through shared memory). K and V tiles are staged with
// cp.async, staggered as in FlashAttention-2: V of tile j loads while S of
// tile j is computed, K of tile j + 1 while P·V of tile j is.
//
// Why one block per query head rather than per KV head: four warps of 16
// rows hold 64 (row, head) pairs either way, so the K/V bytes staged per
// flop are the same; per query head gives `group` times more blocks (short
// prompts still fill the GPU), keeps every warp's rows at consecutive
// positions (the causal skip below) and puts the group's heads in adjacent
// blocks, which then read the same K/V tiles from L2.
//
// mma.sync.m16n8k16 (PTX ISA, "Matrix Fragments for mma.m16n8k16" with
// .bf16), lane = 4 * gid + tig, each .b32 register two bf16, the lower
// column (A, C) or lower k (B) in the low half:
// - A (16 x 16, row major): a[0] = (gid, 2 tig .. 2 tig + 1),
//   a[1] = (gid + 8, 2 tig ..), a[2] = (gid, 2 tig + 8 ..),
//   a[3] = (gid + 8, 2 tig + 8 ..);
// - B (16 x 8, k x n, "col"): b[0] = (k 2 tig .. 2 tig + 1, n gid),
//   b[1] = (k 2 tig + 8 .., n gid);
// - C/D (16 x 8, f32): c[0], c[1] = (gid, 2 tig, 2 tig + 1), c[2], c[3] =
//   (gid + 8, 2 tig, 2 tig + 1).
// ldmatrix.m8n8.x4: lanes 8 i .. 8 i + 7 give the row addresses of matrix i,
// register i receives matrix i with lane holding (row gid, columns 2 tig,
// 2 tig + 1); with .trans it holds (rows 2 tig, 2 tig + 1, column gid).
// Hence: Q (row major in shared memory) loads straight into A; K rows (keys)
// hold Bᵀ of S = Q·Kᵀ, so plain ldmatrix gives B; V rows (keys) hold B of
// P·V row major, so ldmatrix .trans gives B; and the C fragments of two
// adjacent 8-key blocks of S are exactly the A fragment of P for those 16
// keys.

#include "gpu/cuda/prefill_attention.cuh"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <string>

#include "gpu/cuda/cuda_check.hpp"

namespace volt::cuda {

namespace {

constexpr int n_warps = 4;
constexpr int threads = n_warps * 32;
constexpr int warp_rows = 16;
static_assert(n_warps * warp_rows == prefill_tile_rows);
constexpr int kv_tile = 64; // keys per K/V tile
constexpr int key_blocks = kv_tile / 8; // n8 blocks of S
constexpr int key_chunks = kv_tile / 16; // k16 chunks of P
constexpr unsigned all_chunks = (1u << key_chunks) - 1;
constexpr unsigned full_mask = 0xffffffffu;

struct prefill_params {
  const float* q;
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  const int32_t* positions;
  const int32_t* row_table;
  const int32_t* block_tables;
  int64_t table_stride;
  const int32_t* tile_first_row;
  const int32_t* tile_rows;
  int n_tiles;
  int n_heads;
  int n_kv_heads;
  int group;
  int page_size;
  int window;
  float scale_log2; // log2(e) / sqrt(head_dim): scores go to exp2 directly
  __nv_bfloat16* out;
};

/// Index of 16-byte chunk c of row r in a tile of rows of Cpr chunks. The
/// chunk is XORed with bits of the row so that the eight rows one ldmatrix
/// matrix reads at the same logical chunk sit in eight different 16-byte
/// bank groups (no conflicts, no padding).
template <int Cpr>
__device__ __forceinline__ int swizzle(int r, int c) {
  if constexpr (Cpr >= 8)
    return r * Cpr + (c ^ (r & 7));
  else
    return r * Cpr + (c ^ ((r / (8 / Cpr)) & (Cpr - 1)));
}

/// Shared address of the 16-byte chunk 2 k + b of row 16 j + r, where the
/// lane's own (r, b) address `lane_addr` = tile + 16 swizzle(r, b), r < 16,
/// b < 2, and the tile is aligned to its row size: 2 k has bit 0 clear, so
/// (2 k + b) ^ x = 2 k ^ (b ^ x), and a step of 16 rows leaves the swizzle
/// bits alone. One XOR per k and an immediate per j, instead of an address
/// register per fragment.
template <int Cpr>
__device__ __forceinline__ uint32_t frag_addr(uint32_t lane_addr, int k,
                                              int j) {
  return (lane_addr ^ (32u * k)) + j * 16 * Cpr * 16;
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

/// 16 bytes global -> shared, bypassing L1; zero-fills without reading
/// when !valid.
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src,
                                            bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst),
               "l"(src), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;");
}

__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_group 0;" ::: "memory");
}

/// Volatile: the compiler must not move it across the barriers that make
/// the cp.async data visible.
template <bool Trans>
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  if constexpr (Trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 "
                 "{%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 "
                 "{%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/// d += a · b, m16n8k16, bf16 in, f32 accumulate.
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4],
                                          uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// lo in the low half, as the fragments want the lower column there.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

/// 2^x; 2^-inf = 0.
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// s[nb] += Q · K[keys 8 nb .. 8 nb + 7]ᵀ for the warp's 16 rows. Partial:
/// only the 16-key chunks set in `live` (the others are left alone, to be
/// masked); the full path has no branches, so the scheduler interleaves all
/// eight accumulator chains.
template <int HD, bool Partial>
__device__ __forceinline__ void score_tile(float (&s)[key_blocks][4],
                                           const uint32_t (&qf)[HD / 16][4],
                                           uint32_t k_lane, unsigned live) {
#pragma unroll
  for (int kc = 0; kc < HD / 16; ++kc)
#pragma unroll
    for (int j = 0; j < key_chunks; ++j) {
      if (Partial && !(live >> j & 1u))
        continue;
      uint32_t b[4];
      ldmatrix_x4<false>(b, frag_addr<HD / 8>(k_lane, kc, j));
      mma_16816(s[2 * j], qf[kc], b[0], b[1]);
      mma_16816(s[2 * j + 1], qf[kc], b[2], b[3]);
    }
}

/// o += P · V[tile keys] for the warp's 16 rows, P as A fragments per
/// 16-key chunk; Partial skips the chunks not in `live` (P is 0 there).
template <int HD, bool Partial>
__device__ __forceinline__ void
accumulate_pv(float (&o)[HD / 8][4], const uint32_t (&pf)[key_chunks][4],
              uint32_t v_lane, unsigned live) {
#pragma unroll
  for (int j = 0; j < key_chunks; ++j) {
    if (Partial && !(live >> j & 1u))
      continue;
#pragma unroll
    for (int dp = 0; dp < HD / 16; ++dp) {
      uint32_t b[4];
      ldmatrix_x4<true>(b, frag_addr<HD / 8>(v_lane, dp, j));
      mma_16816(o[2 * dp], pf[j], b[0], b[1]);
      mma_16816(o[2 * dp + 1], pf[j], b[2], b[3]);
    }
  }
}

/// Online softmax over one tile for the thread's rows gid and gid + 8: the
/// scores s (unscaled) become P, rounded to bf16 as the A fragments pf of
/// P·V; the running maxima m, row sums l (this thread's part) and outputs o
/// are rescaled. With `masked`, key key0 + 8 nb + (e & 1) is -inf for row
/// e >> 1 unless it lies in [lo, pos] of that row.
template <int HD>
__device__ __forceinline__ void
online_softmax(float (&s)[key_blocks][4], float scale_log2, bool masked,
               int key0, const int (&lo)[2], const int (&pos)[2], float (&m)[2],
               float (&l)[2], float (&o)[HD / 8][4],
               uint32_t (&pf)[key_chunks][4]) {
  float mx[2] = {m[0], m[1]};
#pragma unroll
  for (int nb = 0; nb < key_blocks; ++nb)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float x = s[nb][e] * scale_log2;
      if (masked) {
        const int key = key0 + nb * 8 + (e & 1);
        if (key < lo[e >> 1] || key > pos[e >> 1])
          x = -INFINITY;
      }
      s[nb][e] = x;
      mx[e >> 1] = fmaxf(mx[e >> 1], x);
    }
  float base[2];
  float corr[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    // A row is spread over the four lanes of its quad.
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(full_mask, mx[r], 1));
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(full_mask, mx[r], 2));
    // No key seen yet: subtract 0 so that -inf - -inf never happens.
    base[r] = mx[r] == -INFINITY ? 0.0f : mx[r];
    corr[r] = exp2_approx(m[r] - base[r]);
    m[r] = mx[r];
    l[r] *= corr[r];
  }
#pragma unroll
  for (int nb = 0; nb < key_blocks; ++nb) {
    const float p0 = exp2_approx(s[nb][0] - base[0]);
    const float p1 = exp2_approx(s[nb][1] - base[0]);
    const float p2 = exp2_approx(s[nb][2] - base[1]);
    const float p3 = exp2_approx(s[nb][3] - base[1]);
    l[0] += p0 + p1;
    l[1] += p2 + p3;
    pf[nb / 2][(nb & 1) * 2] = pack_bf16(p0, p1);
    pf[nb / 2][(nb & 1) * 2 + 1] = pack_bf16(p2, p3);
  }
#pragma unroll
  for (int db = 0; db < HD / 8; ++db) {
    o[db][0] *= corr[0];
    o[db][1] *= corr[0];
    o[db][2] *= corr[1];
    o[db][3] *= corr[1];
  }
}

/// This kernel does the following for query head blockIdx.x and query tile
/// n_tiles - 1 - blockIdx.y (later tiles hold longer rows: they start
/// first), warp w taking tile rows 16 w .. 16 w + 15:
/// 1. reads the rows' positions; per warp and per block the key range
///    [min first key, max position] of its rows (rows past tile_rows or of
///    negative position see no key);
/// 2. stages Q (f32 -> bf16) in the V buffer and loads each warp's A
///    fragments into registers (Q is read once, so its buffer is reused);
/// 3. per K/V tile of 64 keys, from the block's last key down (the tile
///    crossing the diagonal comes first, the one cut at the first key
///    last): 64 threads start loading the next tile's block table entries;
///    waits for K, starts V; S = Q·Kᵀ over the 16-key chunks some row of the
///    warp can see; masks (only tiles where some row of the warp sees not
///    all keys); online softmax in the exp2 domain; the next tile's cache
///    slots into shared memory; waits for V, starts the next K; O += P·V;
/// 4. divides by the row sums (0 for a row without keys: zeros) and writes
///    its rows of the tile as bf16 through shared memory, 16 bytes a store.
template <int HD>
__global__ void __launch_bounds__(threads, 2)
  prefill_attention_kernel(const prefill_params p) {
  constexpr int cpr = HD / 8; // 16-byte chunks per row of Q, K, V, out
  // Aligned to more than a row, as frag_addr wants.
  __shared__ __align__(1024) uint4 k_s[kv_tile * cpr];
  __shared__ __align__(1024) uint4 v_s[kv_tile * cpr]; // Q first
  __shared__ int32_t slot_s[2][kv_tile];
  __shared__ int32_t range_s[n_warps][2];

  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int gid = lane >> 2;
  const int tig = lane & 3;
  const int h = blockIdx.x;
  const int kvh = h / p.group;
  const int t = p.n_tiles - 1 - static_cast<int>(blockIdx.y);
  const int first = p.tile_first_row[t];
  const int n_rows = p.tile_rows[t];

  // 1. Lane l looks at row 16 w + (l & 15); the warp reduces over them.
  const int my_row = warp * warp_rows + (lane & 15);
  const int pos_in = my_row < n_rows ? p.positions[first + my_row] : -1;
  const bool valid = pos_in >= 0;
  const int pos = valid ? pos_in : -1;
  const int lo = !valid ? 0 : p.window > 0 ? max(0, pos - p.window + 1) : 0;
  int w_hi = pos; // largest position
  int w_pmin = valid ? pos : INT_MAX; // smallest position
  int w_lo = valid ? lo : INT_MAX; // smallest first key
  int w_lomax = lo; // largest first key
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    w_hi = max(w_hi, __shfl_xor_sync(full_mask, w_hi, off));
    w_pmin = min(w_pmin, __shfl_xor_sync(full_mask, w_pmin, off));
    w_lo = min(w_lo, __shfl_xor_sync(full_mask, w_lo, off));
    w_lomax = max(w_lomax, __shfl_xor_sync(full_mask, w_lomax, off));
  }
  const bool w_any_invalid = __any_sync(full_mask, !valid);
  // This thread's fragment rows: gid and gid + 8.
  const int row_pos[2] = {__shfl_sync(full_mask, pos, gid),
                          __shfl_sync(full_mask, pos, gid + 8)};
  const int row_lo[2] = {__shfl_sync(full_mask, lo, gid),
                         __shfl_sync(full_mask, lo, gid + 8)};
  if (lane == 0) {
    range_s[warp][0] = w_lo;
    range_s[warp][1] = w_hi;
  }

  // 2. Q rows past the tile are zeros (they are masked anyway).
  const int64_t q_stride = static_cast<int64_t>(p.n_heads) * HD;
  const float* q_tile = p.q + static_cast<int64_t>(first) * q_stride
                        + static_cast<int64_t>(h) * HD;
#pragma unroll
  for (int k = 0; k < kv_tile * cpr / threads; ++k) {
    const int i = tid + k * threads;
    const int r = i / cpr;
    const int c = i % cpr;
    uint4 packed = make_uint4(0, 0, 0, 0);
    if (r < n_rows) {
      const auto* src
        = reinterpret_cast<const float4*>(q_tile + r * q_stride + c * 8);
      const float4 a = src[0];
      const float4 b = src[1];
      packed = make_uint4(pack_bf16(a.x, a.y), pack_bf16(a.z, a.w),
                          pack_bf16(b.x, b.y), pack_bf16(b.z, b.w));
    }
    v_s[swizzle<cpr>(r, c)] = packed;
  }
  __syncthreads();

  int blo = INT_MAX;
  int bhi = -1;
#pragma unroll
  for (int w = 0; w < n_warps; ++w) {
    blo = min(blo, range_s[w][0]);
    bhi = max(bhi, range_s[w][1]);
  }
  const int n_kt = bhi >= blo ? (bhi - blo + kv_tile) / kv_tile : 0;
  // The lanes' ldmatrix rows and chunks (see the fragment layouts above):
  // Q, A of S: rows + 0..7 | + 8..15 (lane bit 3) x dims chunk 2 kc | + 1
  //   (lane bit 4): a0, a1, a2, a3;
  // K, B of S: keys + 0..7 | + 8..15 (lane bit 4) x dims chunk 2 kc | + 1
  //   (lane bit 3): b0, b1 of an 8-key block, then of the next;
  // V, B of P·V, transposed: keys + 0..7 | + 8..15 (lane bit 3) x dims
  //   chunk 2 dp | + 1 (lane bit 4): b0, b1 of a dim block, then the next.
  const int row_b3 = (lane & 7) + (lane >> 3 & 1) * 8;
  const int row_b4 = (lane & 7) + (lane >> 4) * 8;
  const uint32_t q_lane
    = smem_addr(v_s + swizzle<cpr>(warp * warp_rows + row_b3, lane >> 4));
  const uint32_t k_lane = smem_addr(k_s + swizzle<cpr>(row_b4, lane >> 3 & 1));
  const uint32_t v_lane = smem_addr(v_s + swizzle<cpr>(row_b3, lane >> 4));
  uint32_t qf[HD / 16][4];
#pragma unroll
  for (int kc = 0; kc < HD / 16; ++kc)
    ldmatrix_x4<false>(qf[kc], frag_addr<cpr>(q_lane, kc, 0));

  const int32_t* table = p.block_tables;
  if (n_kt > 0)
    table += static_cast<int64_t>(p.row_table[first]) * p.table_stride;
  // Tile j covers keys [bhi + 1 - 64 (j + 1), bhi + 1 - 64 j).
  auto tile_key0 = [&](int j) { return bhi + 1 - kv_tile * (j + 1); };
  // Thread tid < 64 resolves key tile_key0(j) + tid in two steps, so that
  // the table load's latency hides behind a tile's S: fetch loads {page
  // entry, offset in the page}, slot_of makes the cache slot (-1 outside the
  // block's range: loaded as zeros).
  auto fetch = [&](int j) {
    const int key = tile_key0(j) + tid;
    int2 e = make_int2(-1, 0);
    if (key >= blo && key <= bhi) {
      const int page = key / p.page_size;
      e = make_int2(table[page], key - page * p.page_size);
    }
    return e;
  };
  auto slot_of = [&](int2 e) { return e.x < 0 ? -1 : e.x * p.page_size + e.y; };
  const int64_t slot_stride = static_cast<int64_t>(p.n_kv_heads) * HD;
  const __nv_bfloat16* k_head = p.k + static_cast<int64_t>(kvh) * HD;
  const __nv_bfloat16* v_head = p.v + static_cast<int64_t>(kvh) * HD;
  auto load_tile = [&](uint4* dst, const __nv_bfloat16* head,
                       const int32_t* slots) {
#pragma unroll
    for (int k = 0; k < kv_tile * cpr / threads; ++k) {
      const int i = tid + k * threads;
      const int r = i / cpr;
      const int c = i % cpr;
      const int slot = slots[r];
      const __nv_bfloat16* src = slot >= 0 ? head + slot * slot_stride + c * 8
                                           : head;
      cp_async_16(smem_addr(dst + swizzle<cpr>(r, c)), src, slot >= 0);
    }
    cp_async_commit();
  };
  if (n_kt > 0 && tid < kv_tile)
    slot_s[0][tid] = slot_of(fetch(0));
  __syncthreads();
  if (n_kt > 0)
    load_tile(k_s, k_head, slot_s[0]);

  // 3. The K/V tiles.
  float o[HD / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}; // running maxima (exp2 domain)
  float l[2] = {0.0f, 0.0f}; // this thread's part of the row sums
  for (int it = 0; it < n_kt; ++it) {
    const int kt0 = tile_key0(it);
    const bool resolver = it + 1 < n_kt && tid < kv_tile;
    int2 next = make_int2(-1, 0);
    if (resolver)
      next = fetch(it + 1);
    cp_async_wait_all();
    __syncthreads(); // K of tile it is in; everyone is done with V of it - 1
    load_tile(v_s, v_head, slot_s[it & 1]);

    // The 16-key chunks some row of this warp can see.
    unsigned live = 0;
#pragma unroll
    for (int j = 0; j < key_chunks; ++j)
      if (kt0 + 16 * j <= w_hi && kt0 + 16 * j + 15 >= w_lo)
        live |= 1u << j;
    uint32_t pf[key_chunks][4];
    if (live != 0) {
      float s[key_blocks][4] = {};
      if (live == all_chunks)
        score_tile<HD, false>(s, qf, k_lane, live);
      else
        score_tile<HD, true>(s, qf, k_lane, live);
      // Every key of the tile is visible to every row of the warp unless the
      // tile reaches past the smallest position or below the largest first
      // key, or the warp has rows without keys.
      const bool masked = w_any_invalid || kt0 + kv_tile - 1 > w_pmin
                          || kt0 < w_lomax;
      online_softmax<HD>(s, p.scale_log2, masked, kt0 + 2 * tig, row_lo,
                         row_pos, m, l, o, pf);
    }
    // slot_s[(it + 1) & 1] was last read when V of tile it - 1 started,
    // before the previous iteration's second barrier.
    if (resolver)
      slot_s[(it + 1) & 1][tid] = slot_of(next);
    cp_async_wait_all();
    __syncthreads(); // V of tile it is in; everyone is done with K of it
    if (it + 1 < n_kt)
      load_tile(k_s, k_head, slot_s[(it + 1) & 1]);
    if (live == all_chunks)
      accumulate_pv<HD, false>(o, pf, v_lane, live);
    else if (live != 0)
      accumulate_pv<HD, true>(o, pf, v_lane, live);
  }

  // 4. K's buffer is free: the last tile started no K load, and every warp
  // passed the last barrier after its last S. Each warp uses its own rows.
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(full_mask, l[r], 1);
    l[r] += __shfl_xor_sync(full_mask, l[r], 2);
    inv[r] = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
  }
  const int r0 = warp * warp_rows + gid;
  auto* stage = reinterpret_cast<uint32_t*>(k_s);
#pragma unroll
  for (int db = 0; db < HD / 8; ++db) {
    stage[swizzle<cpr>(r0, db) * 4 + tig] = pack_bf16(o[db][0] * inv[0],
                                                      o[db][1] * inv[0]);
    stage[swizzle<cpr>(r0 + 8, db) * 4 + tig] = pack_bf16(o[db][2] * inv[1],
                                                          o[db][3] * inv[1]);
  }
  __syncwarp();
  uint4* out_tile
    = reinterpret_cast<uint4*>(p.out + static_cast<int64_t>(first) * q_stride
                               + static_cast<int64_t>(h) * HD);
#pragma unroll
  for (int k = 0; k < warp_rows * cpr / 32; ++k) {
    const int i = lane + 32 * k;
    const int r = warp * warp_rows + i / cpr;
    const int c = i % cpr;
    if (r < n_rows)
      out_tile[(r * q_stride) / 8 + c] = k_s[swizzle<cpr>(r, c)];
  }
}

template <int HD>
void launch_prefill(const prefill_params& p, cudaStream_t stream) {
  dim3 grid(static_cast<unsigned>(p.n_heads), static_cast<unsigned>(p.n_tiles));
  prefill_attention_kernel<HD><<<grid, threads, 0, stream>>>(p);
  CUDA_CHECK_LAUNCH(prefill_attention_kernel);
}

[[noreturn]] void reject(const std::string& why) {
  throw cuda_error("prefill_attention: " + why);
}

bool aligned16(const void* ptr) {
  return reinterpret_cast<uintptr_t>(ptr) % 16 == 0;
}

} // namespace

bool prefill_attention_supported(const attention_shape& shape) {
  const auto hd = shape.head_dim;
  return (hd == 16 || hd == 32 || hd == 64 || hd == 128)
         && shape.n_kv_heads >= 1 && shape.n_heads >= shape.n_kv_heads
         && shape.n_heads % shape.n_kv_heads == 0 && shape.n_heads <= INT_MAX
         && shape.page_size >= 1 && shape.page_size <= INT_MAX
         && shape.sliding_window >= 0;
}

void prefill_attention(const float* q, const __nv_bfloat16* k_cache,
                       const __nv_bfloat16* v_cache,
                       const attention_batch& batch,
                       const int32_t* tile_first_row, const int32_t* tile_rows,
                       int64_t n_tiles, const attention_shape& shape,
                       __nv_bfloat16* out, cudaStream_t stream) {
  if (!prefill_attention_supported(shape))
    reject("unsupported shape: head_dim " + std::to_string(shape.head_dim)
           + " (16, 32, 64 or 128), n_heads " + std::to_string(shape.n_heads)
           + " / n_kv_heads " + std::to_string(shape.n_kv_heads)
           + ", page_size " + std::to_string(shape.page_size) + ", window "
           + std::to_string(shape.sliding_window));
  if (n_tiles < 0 || n_tiles > 65535)
    reject("n_tiles " + std::to_string(n_tiles) + " (0 to 65535)");
  if (!aligned16(q) || !aligned16(k_cache) || !aligned16(v_cache)
      || !aligned16(out))
    reject("q, the K/V caches and out must be 16-byte aligned");
  if (n_tiles == 0)
    return;
  prefill_params p{};
  p.q = q;
  p.k = k_cache;
  p.v = v_cache;
  p.positions = batch.positions;
  p.row_table = batch.row_table;
  p.block_tables = batch.block_tables;
  p.table_stride = batch.table_stride;
  p.tile_first_row = tile_first_row;
  p.tile_rows = tile_rows;
  p.n_tiles = static_cast<int>(n_tiles);
  p.n_heads = static_cast<int>(shape.n_heads);
  p.n_kv_heads = static_cast<int>(shape.n_kv_heads);
  p.group = static_cast<int>(shape.n_heads / shape.n_kv_heads);
  p.page_size = static_cast<int>(shape.page_size);
  p.window
    = static_cast<int>(std::min<int64_t>(shape.sliding_window, INT32_MAX));
  p.scale_log2 = static_cast<float>(
    1.4426950408889634 / std::sqrt(static_cast<double>(shape.head_dim)));
  p.out = out;
  switch (shape.head_dim) {
    case 16: launch_prefill<16>(p, stream); break;
    case 32: launch_prefill<32>(p, stream); break;
    case 64: launch_prefill<64>(p, stream); break;
    default: launch_prefill<128>(p, stream); break;
  }
}

} // namespace volt::cuda
