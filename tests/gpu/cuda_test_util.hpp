#pragma once

// Helpers of the CUDA test suites (CUDA builds only): the GPU check that
// prints the skip marker, and host <-> device copies with outputs poisoned
// beforehand, so that an element a kernel forgets to write reads as NaN
// (f32, bf16) or -1 (integers).

#include <algorithm>
#include <vector>

#include <cuda_runtime_api.h>

#include "gpu/cuda/device_buffer.hpp"
#include "tests/gpu/gpu_test_util.hpp"

namespace volt::test {

/// True when a CUDA device is present; otherwise prints VOLT_GPU_SKIPPED.
inline bool gpu_available() {
  int count = 0;
  auto status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    report_gpu_skip(status != cudaSuccess ? cudaGetErrorString(status)
                                          : "no CUDA device");
    cudaGetLastError();
    return false;
  }
  return true;
}

template <class T>
cuda::device_buffer upload(const std::vector<T>& xs) {
  cuda::device_buffer b(sizeof(T) * std::max<size_t>(xs.size(), 1));
  CUDA_CHECK(cudaMemcpy(b.get(), xs.data(), sizeof(T) * xs.size(),
                        cudaMemcpyHostToDevice));
  return b;
}

/// A device buffer of `bytes` bytes filled with 0xff: NaN as f32 and bf16,
/// -1 as i32.
inline cuda::device_buffer poisoned(size_t bytes) {
  cuda::device_buffer b(std::max<size_t>(bytes, 1));
  CUDA_CHECK(cudaMemset(b.get(), 0xff, b.bytes()));
  return b;
}

template <class T>
std::vector<T> download(const cuda::device_buffer& b, size_t n) {
  std::vector<T> out(n);
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(
    cudaMemcpy(out.data(), b.get(), sizeof(T) * n, cudaMemcpyDeviceToHost));
  return out;
}

} // namespace volt::test
