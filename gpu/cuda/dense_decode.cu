// Dense decode products by the decode kernel; see dense_decode.cuh.

#include "gpu/cuda/dense_decode.cuh"

#include <algorithm>
#include <string>

#include "gpu/cuda/decode_mma.cuh"
#include "gpu/cuda/expert_ffn.cuh"

namespace volt::cuda {

namespace {

/// bf16 elements of K per warp step with 16-byte loads (4 lanes x 8).
constexpr int64_t k_step = 32;

/// Token rows per pass of the kernel (4 tiles of 8).
constexpr int64_t rows_per_pass = 32;

int multiprocessors() {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  int count = 0;
  CUDA_CHECK(
    cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

} // namespace

bool dense_decode_takes(int64_t n_rows, int64_t n_out, int64_t k) {
  return n_rows > 0 && n_rows <= get_decode_tuning().dense_decode_max_rows
         && n_out > 0 && n_out % rows_per_warp == 0 && k > 0
         && k % k_step == 0;
}

int64_t dense_decode_splits(int64_t n_out, int64_t k) {
  const int64_t rows_per_block = rows_per_warp * warps_per_block;
  const int64_t blocks = (n_out + rows_per_block - 1) / rows_per_block;
  const int64_t wanted = 2 * static_cast<int64_t>(multiprocessors());
  int64_t splits = 1;
  while (splits < 8 && blocks * splits < wanted
         && k % (2 * splits * k_step) == 0 && k / (2 * splits) >= 8 * k_step)
    splits *= 2;
  return splits;
}

void dense_decode(const __nv_bfloat16* w, int64_t n_out, int64_t k,
                  const __nv_bfloat16* x, int64_t n_rows, int64_t splits,
                  float* y, cudaStream_t stream) {
  if (n_rows <= 0)
    return;
  if (n_out % rows_per_warp != 0 || splits < 1 || k % (k_step * splits) != 0)
    throw cuda_error("dense_decode: unsupported shape (n_out "
                     + std::to_string(n_out) + ", k " + std::to_string(k)
                     + ", splits " + std::to_string(splits) + ")");
  mma_args a{};
  a.w = w;
  a.out_rows = n_out;
  a.k = k;
  a.k_per_split = k / splits;
  a.x = reinterpret_cast<const uint16_t*>(x);
  a.y = y;
  a.n_rows = n_rows;
  // The matrix is a model weight: nothing ahead in the stream writes it.
  a.prefetch_weights = true;
  const int nt = static_cast<int>(std::clamp<int64_t>(
    (std::min(n_rows, rows_per_pass) + 7) / 8, 1, 4));
  launch_expert_mma<__nv_bfloat16, false>(a, 1, splits, nt,
                                          get_decode_tuning().chunks, false,
                                          stream);
}

} // namespace volt::cuda
