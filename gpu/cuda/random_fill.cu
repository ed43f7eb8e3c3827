#include "gpu/cuda/random_fill.cuh"

#include "gpu/cuda/cuda_check.hpp"

namespace volt::cuda {

namespace {

/// splitmix64 of (seed, i): independent, reproducible values per element.
__device__ inline uint64_t mix(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__device__ inline float uniform(uint64_t seed, uint64_t i, float scale) {
  // 24 random bits → [-1, 1).
  float u = static_cast<float>(mix(seed, i) >> 40) * (1.0f / 8388608.0f) - 1.0f;
  return u * scale;
}

__device__ inline void store(__nv_bfloat16* p, float v) {
  *p = __float2bfloat16_rn(v);
}
__device__ inline void store(float* p, float v) {
  *p = v;
}

template <class T>
__global__ void fill_uniform_kernel(T* out, int64_t n, float scale,
                                    uint64_t seed) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    store(out + i, uniform(seed, static_cast<uint64_t>(i), scale));
}

__global__ void fill_int8_kernel(int8_t* out, int64_t n, uint64_t seed) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = static_cast<int8_t>(static_cast<int>(mix(seed, i) % 255) - 127);
}

unsigned grid_for(int64_t n) {
  int64_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

} // namespace

void fill_uniform(__nv_bfloat16* out, int64_t n, float scale, uint64_t seed,
                  cudaStream_t stream) {
  if (n == 0)
    return;
  fill_uniform_kernel<<<grid_for(n), 256, 0, stream>>>(out, n, scale, seed);
  CUDA_CHECK_LAUNCH(fill_uniform_kernel);
}

void fill_uniform(float* out, int64_t n, float scale, uint64_t seed,
                  cudaStream_t stream) {
  if (n == 0)
    return;
  fill_uniform_kernel<<<grid_for(n), 256, 0, stream>>>(out, n, scale, seed);
  CUDA_CHECK_LAUNCH(fill_uniform_kernel);
}

void fill_uniform(int8_t* out, int64_t n, uint64_t seed, cudaStream_t stream) {
  if (n == 0)
    return;
  fill_int8_kernel<<<grid_for(n), 256, 0, stream>>>(out, n, seed);
  CUDA_CHECK_LAUNCH(fill_int8_kernel);
}

} // namespace volt::cuda
