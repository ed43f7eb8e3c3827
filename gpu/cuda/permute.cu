// Dispatch plan, gather and combine. The plan uses CUB's stable radix sort
// over the expert ids (only ceil(log2(n_experts)) bits), a histogram and
// DeviceScan for the offsets.

#include "gpu/cuda/permute.cuh"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "gpu/cuda/chained_launch.cuh"
#include "gpu/cuda/cuda_check.hpp"

namespace volt::cuda {

namespace {

constexpr int threads = 256;

unsigned blocks_for(int64_t n, int per_block = threads) {
  return static_cast<unsigned>((n + per_block - 1) / per_block);
}

int key_bits(int64_t n_experts) {
  int bits = 1;
  while ((int64_t{1} << bits) < n_experts)
    ++bits;
  return bits;
}

size_t align_up(size_t x) {
  return (x + 255) / 256 * 256;
}

/// Workspace layout: [pair iota | sorted keys | counts (E + 1) | CUB temp].
struct plan_layout {
  size_t iota = 0, keys = 0, counts = 0, cub_temp = 0, cub_bytes = 0, total = 0;
};

plan_layout make_layout(int64_t n_pairs, int64_t n_experts) {
  plan_layout l;
  size_t sort_bytes = 0;
  size_t scan_bytes = 0;
  auto n = static_cast<int>(n_pairs);
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
    nullptr, sort_bytes, static_cast<const int32_t*>(nullptr),
    static_cast<int32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
    static_cast<int32_t*>(nullptr), n, 0, key_bits(n_experts)));
  CUDA_CHECK(cub::DeviceScan::ExclusiveSum(
    nullptr, scan_bytes, static_cast<const int32_t*>(nullptr),
    static_cast<int32_t*>(nullptr), static_cast<int>(n_experts + 1)));
  l.iota = 0;
  l.keys = align_up(sizeof(int32_t) * n_pairs);
  l.counts = l.keys + align_up(sizeof(int32_t) * n_pairs);
  l.cub_temp = l.counts + align_up(sizeof(int32_t) * (n_experts + 1));
  l.cub_bytes = std::max(sort_bytes, scan_bytes);
  l.total = l.cub_temp + align_up(l.cub_bytes);
  return l;
}

/// Fills iota[i] = i and counts each expert's pairs.
__global__ void iota_histogram_kernel(const int32_t* __restrict__ topk_ids,
                                      int64_t n_pairs,
                                      int32_t* __restrict__ iota,
                                      int32_t* __restrict__ counts) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_pairs)
    return;
  iota[i] = static_cast<int32_t>(i);
  atomicAdd(&counts[topk_ids[i]], 1);
}

/// Pairs up to which one block plans the dispatch alone (one launch instead
/// of the histogram, CUB sort, scan and inversion: decode steps are
/// launch-bound).
constexpr int64_t small_plan_pairs = 1024;
constexpr int small_plan_threads = 1024;

/// This kernel does the following in one block of small_plan_threads:
/// 1. loads the expert ids into shared memory and counts each expert;
/// 2. thread 0 scans the counts into the offsets (n_experts <= 256);
/// 3. each pair's row is its expert's offset plus the number of earlier
///    pairs with the same expert (stable: tokens ascending within an
///    expert, as the radix sort gives), written both ways.
__global__ void __launch_bounds__(small_plan_threads)
  small_plan_kernel(const int32_t* __restrict__ topk_ids, int n_pairs,
                    int n_experts, int32_t* __restrict__ sorted_pair,
                    int32_t* __restrict__ expert_offsets,
                    int32_t* __restrict__ pair_row) {
  __shared__ int32_t ids[small_plan_pairs];
  __shared__ int32_t start[257];
  for (int i = threadIdx.x; i <= n_experts; i += blockDim.x)
    start[i] = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < n_pairs; i += blockDim.x) {
    ids[i] = topk_ids[i];
    atomicAdd(&start[ids[i]], 1);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int sum = 0;
    for (int e = 0; e <= n_experts; ++e) {
      int c = start[e];
      start[e] = sum;
      expert_offsets[e] = sum;
      sum += c;
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < n_pairs; i += blockDim.x) {
    int e = ids[i];
    int rank = 0;
    for (int j = 0; j < i; ++j)
      rank += ids[j] == e;
    int row = start[e] + rank;
    sorted_pair[row] = i;
    pair_row[i] = row;
  }
}

/// Inverts the permutation: pair_row[sorted_pair[r]] = r.
__global__ void invert_kernel(const int32_t* __restrict__ sorted_pair,
                              int64_t n_rows, int32_t* __restrict__ pair_row) {
  int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r < n_rows)
    pair_row[sorted_pair[r]] = static_cast<int32_t>(r);
}

__device__ inline float to_float(float x) {
  return x;
}
__device__ inline float to_float(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

__device__ inline void narrow(float v, __nv_bfloat16* out) {
  *out = __float2bfloat16_rn(v);
}
__device__ inline void narrow(float v, __half* out) {
  *out = __float2half_rn(v);
}

/// One block per grouped row: copies (and narrows) the token's row.
template <class T, class Out>
__global__ void gather_rows_kernel(const T* __restrict__ x,
                                   const int32_t* __restrict__ sorted_pair,
                                   int64_t k, int64_t hidden,
                                   Out* __restrict__ rows) {
  chain_start();
  int64_t r = blockIdx.x;
  const T* src = x + (sorted_pair[r] / k) * hidden;
  Out* dst = rows + r * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x)
    narrow(to_float(src[i]), dst + i);
}

/// Token blockIdx.x, one column per thread (columns spread over blockIdx.y,
/// so that a batch of one token still fills many multiprocessors); each
/// thread sums the k slots in order, each slot's split-K partials in order.
__global__ void combine_kernel(const float* __restrict__ y, int64_t splits,
                               int64_t n_rows,
                               const int32_t* __restrict__ pair_row,
                               const float* __restrict__ topk_weights,
                               int64_t k, int64_t hidden, bool accumulate,
                               float* __restrict__ out) {
  chain_start();
  int64_t t = blockIdx.x;
  int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (i < hidden) {
    float acc = 0;
    for (int64_t j = 0; j < k; ++j) {
      int64_t row = pair_row[t * k + j];
      float v = 0;
      for (int64_t s = 0; s < splits; ++s)
        v += y[(s * n_rows + row) * hidden + i];
      acc += topk_weights[t * k + j] * v;
    }
    out[t * hidden + i] = accumulate ? out[t * hidden + i] + acc : acc;
  }
}

__global__ void sum_splits_kernel(const float* __restrict__ y, int64_t splits,
                                  int64_t n, float* out) {
  chain_start();
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n)
    return;
  float v = 0;
  for (int64_t s = 0; s < splits; ++s)
    v += y[s * n + i];
  out[i] = v;
}

template <class Out>
__global__ void narrow_kernel(const float* __restrict__ x, int64_t n,
                              Out* __restrict__ out) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n)
    narrow(x[i], out + i);
}

template <class T, class Out>
void launch_gather_rows(const T* x, const int32_t* sorted_pair, int64_t n_rows,
                        int64_t k, int64_t hidden, Out* rows,
                        cudaStream_t stream) {
  if (n_rows == 0)
    return;
  launch_chained(gather_rows_kernel<T, Out>, static_cast<unsigned>(n_rows),
                 threads, 0, stream, x, sorted_pair, k, hidden, rows);
}

template <class Out>
void launch_narrow(const float* x, int64_t n, Out* out, cudaStream_t stream) {
  if (n == 0)
    return;
  narrow_kernel<Out><<<blocks_for(n), threads, 0, stream>>>(x, n, out);
  CUDA_CHECK_LAUNCH(narrow_kernel);
}

} // namespace

size_t plan_dispatch_workspace_bytes(int64_t n_pairs, int64_t n_experts) {
  return make_layout(n_pairs, n_experts).total;
}

void plan_dispatch(const int32_t* topk_ids, int64_t n_tokens, int64_t k,
                   int64_t n_experts, void* workspace, size_t workspace_bytes,
                   int32_t* sorted_pair, int32_t* expert_offsets,
                   int32_t* pair_row, cudaStream_t stream) {
  auto n_pairs = n_tokens * k;
  auto l = make_layout(n_pairs, n_experts);
  if (workspace_bytes < l.total)
    throw cuda_error("plan_dispatch: workspace of "
                     + std::to_string(workspace_bytes) + " bytes, need "
                     + std::to_string(l.total));
  if (n_pairs > 0 && n_pairs <= small_plan_pairs) {
    small_plan_kernel<<<1, small_plan_threads, 0, stream>>>(
      topk_ids, static_cast<int>(n_pairs), static_cast<int>(n_experts),
      sorted_pair, expert_offsets, pair_row);
    CUDA_CHECK_LAUNCH(small_plan_kernel);
    return;
  }
  auto* base = static_cast<char*>(workspace);
  auto* iota = reinterpret_cast<int32_t*>(base + l.iota);
  auto* keys = reinterpret_cast<int32_t*>(base + l.keys);
  auto* counts = reinterpret_cast<int32_t*>(base + l.counts);
  void* temp = base + l.cub_temp;
  CUDA_CHECK(cudaMemsetAsync(counts, 0, sizeof(int32_t) * (n_experts + 1),
                             stream));
  if (n_pairs > 0) {
    iota_histogram_kernel<<<blocks_for(n_pairs), threads, 0, stream>>>(
      topk_ids, n_pairs, iota, counts);
    CUDA_CHECK_LAUNCH(iota_histogram_kernel);
    size_t temp_bytes = l.cub_bytes;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      temp, temp_bytes, topk_ids, keys, iota, sorted_pair,
      static_cast<int>(n_pairs), 0, key_bits(n_experts), stream));
  }
  size_t temp_bytes = l.cub_bytes;
  CUDA_CHECK(cub::DeviceScan::ExclusiveSum(temp, temp_bytes, counts,
                                           expert_offsets,
                                           static_cast<int>(n_experts + 1),
                                           stream));
  if (n_pairs > 0) {
    invert_kernel<<<blocks_for(n_pairs), threads, 0, stream>>>(
      sorted_pair, n_pairs, pair_row);
    CUDA_CHECK_LAUNCH(invert_kernel);
  }
}

void gather_rows(const float* x, const int32_t* sorted_pair, int64_t n_rows,
                 int64_t k, int64_t hidden, __nv_bfloat16* rows,
                 cudaStream_t stream) {
  launch_gather_rows(x, sorted_pair, n_rows, k, hidden, rows, stream);
}

void gather_rows(const __nv_bfloat16* x, const int32_t* sorted_pair,
                 int64_t n_rows, int64_t k, int64_t hidden,
                 __nv_bfloat16* rows, cudaStream_t stream) {
  launch_gather_rows(x, sorted_pair, n_rows, k, hidden, rows, stream);
}

void gather_rows(const __nv_bfloat16* x, const int32_t* sorted_pair,
                 int64_t n_rows, int64_t k, int64_t hidden, __half* rows,
                 cudaStream_t stream) {
  launch_gather_rows(x, sorted_pair, n_rows, k, hidden, rows, stream);
}

void combine(const float* y, int64_t splits, const int32_t* pair_row,
             const float* topk_weights, int64_t n_tokens, int64_t k,
             int64_t hidden, float* out, cudaStream_t stream, bool accumulate) {
  if (n_tokens == 0)
    return;
  dim3 grid(static_cast<unsigned>(n_tokens), blocks_for(hidden));
  launch_chained(combine_kernel, grid, threads, 0, stream, y, splits,
                 n_tokens * k, pair_row, topk_weights, k, hidden, accumulate,
                 out);
}

void sum_splits(const float* y, int64_t splits, int64_t n_rows, int64_t hidden,
                float* out, cudaStream_t stream) {
  auto n = n_rows * hidden;
  if (n == 0 || (splits == 1 && y == out))
    return;
  launch_chained(sum_splits_kernel, blocks_for(n), threads, 0, stream, y,
                 splits, n, out);
}

__global__ void copy_words_kernel(const uint32_t* __restrict__ src, int64_t n,
                                  uint32_t* __restrict__ dst) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

void copy_words(const void* src, int64_t n, void* dst, cudaStream_t stream) {
  if (n == 0)
    return;
  copy_words_kernel<<<blocks_for(n), threads, 0, stream>>>(
    static_cast<const uint32_t*>(src), n, static_cast<uint32_t*>(dst));
  CUDA_CHECK_LAUNCH(copy_words_kernel);
}

void f32_to_bf16(const float* x, int64_t n, __nv_bfloat16* out,
                 cudaStream_t stream) {
  launch_narrow(x, n, out, stream);
}

void f32_to_f16(const float* x, int64_t n, __half* out, cudaStream_t stream) {
  launch_narrow(x, n, out, stream);
}

} // namespace volt::cuda
