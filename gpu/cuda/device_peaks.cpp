#include "gpu/cuda/device_peaks.hpp"

#include <algorithm>

#include <cuda_bf16.h>

#include "gpu/cuda/random_fill.cuh"

namespace volt::cuda {

namespace {

float median(std::vector<float> xs) {
  std::sort(xs.begin(), xs.end());
  return xs[xs.size() / 2];
}

} // namespace

double measure_copy_gbs(cudaStream_t s) {
  const size_t bytes = size_t{1} << 30;
  device_buffer a(bytes);
  device_buffer b(bytes);
  fill_uniform(a.get<float>(), bytes / 4, 1.0f, 7, s);
  auto ms = median(time_on_stream(s, 3, 20, [&] {
    CUDA_CHECK(
      cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice, s));
  }));
  return 2.0 * bytes / (ms * 1e-3) / 1e9;
}

double measure_bf16_tflops(cublasHandle_t cublas, cudaStream_t s) {
  const int n = 8192;
  const auto elems = static_cast<int64_t>(n) * n;
  device_buffer a(sizeof(__nv_bfloat16) * elems);
  device_buffer b(sizeof(__nv_bfloat16) * elems);
  device_buffer c(sizeof(float) * elems);
  fill_uniform(a.get<__nv_bfloat16>(), elems, 1.0f, 11, s);
  fill_uniform(b.get<__nv_bfloat16>(), elems, 1.0f, 12, s);
  const float one = 1.0f;
  const float zero = 0.0f;
  CUBLAS_CHECK(cublasSetStream(cublas, s));
  auto ms = median(time_on_stream(s, 3, 10, [&] {
    CUBLAS_CHECK(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one,
                              a.get(), CUDA_R_16BF, n, b.get(), CUDA_R_16BF, n,
                              &zero, c.get(), CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
  }));
  return 2.0 * n * static_cast<double>(n) * n / (ms * 1e-3) / 1e12;
}

} // namespace volt::cuda
