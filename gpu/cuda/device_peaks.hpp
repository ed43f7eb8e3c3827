#pragma once

// The two ceilings of a GPU, measured on it (benchmarks compare against
// these, not the datasheet): device-to-device copy bandwidth and the bf16
// matrix rate through cuBLAS.

#include <cstdint>
#include <memory>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "gpu/cuda/cuda_check.hpp"
#include "gpu/cuda/device_buffer.hpp"

namespace volt::cuda {

/// Times `fn` (which enqueues work on `s`) `iters` times after `warmup`
/// runs, with events around each run; milliseconds per run.
template <class Fn>
std::vector<float> time_on_stream(cudaStream_t s, int64_t warmup,
                                  int64_t iters, Fn fn) {
  for (int64_t i = 0; i < warmup; ++i)
    fn();
  CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<std::unique_ptr<event>> marks;
  for (int64_t i = 0; i <= iters; ++i)
    marks.push_back(std::make_unique<event>(true));
  std::vector<float> times;
  for (int64_t i = 0; i < iters; ++i) {
    CUDA_CHECK(cudaEventRecord(marks[i]->get(), s));
    fn();
    CUDA_CHECK(cudaEventRecord(marks[i + 1]->get(), s));
    CUDA_CHECK(cudaEventSynchronize(marks[i + 1]->get()));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, marks[i]->get(), marks[i + 1]->get()));
    times.push_back(ms);
  }
  return times;
}

/// GB/s of a 1 GiB device-to-device copy, bytes read plus bytes written,
/// median of 20.
double measure_copy_gbs(cudaStream_t s);

/// TFLOP/s of an 8192³ bf16 GEMM (f32 accumulation) on random data, median
/// of 10.
double measure_bf16_tflops(cublasHandle_t cublas, cudaStream_t s);

} // namespace volt::cuda
