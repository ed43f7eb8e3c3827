#pragma once

// Error checking shared by every CUDA file. Host code checks every runtime and
// cuBLAS call and the last error after each launch; a failure throws
// volt::cuda_error naming the call, the file and the line, so that the host
// layer (actors/cuda_expert.cpp, apps/bench_command.cpp) can turn it into one
// caf::error instead of crashing the node.

#include <stdexcept>
#include <string>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

namespace volt::cuda {

/// A failed CUDA runtime or cuBLAS call: "<call> failed at <file>:<line>: <why>".
class cuda_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_cuda_error(const char* call, const char* file, int line,
                                   const std::string& why);

} // namespace volt::cuda

/// Checks a cudaError_t-returning call.
#define CUDA_CHECK(call)                                                       \
  do {                                                                         \
    cudaError_t volt_cuda_status_ = (call);                                    \
    if (volt_cuda_status_ != cudaSuccess)                                      \
      ::volt::cuda::throw_cuda_error(#call, __FILE__, __LINE__,                \
                                     cudaGetErrorString(volt_cuda_status_));   \
  } while (false)

/// Checks the kernel launch that just happened (bad configuration, bad
/// arguments) and clears the error; `name` names the kernel in the message.
#define CUDA_CHECK_LAUNCH(name)                                                \
  do {                                                                         \
    cudaError_t volt_cuda_status_ = cudaGetLastError();                        \
    if (volt_cuda_status_ != cudaSuccess)                                      \
      ::volt::cuda::throw_cuda_error("launch of " #name, __FILE__, __LINE__,   \
                                     cudaGetErrorString(volt_cuda_status_));   \
  } while (false)

/// Checks a cublasStatus_t-returning call.
#define CUBLAS_CHECK(call)                                                     \
  do {                                                                         \
    int volt_cublas_status_ = static_cast<int>(call);                          \
    if (volt_cublas_status_ != 0)                                              \
      ::volt::cuda::throw_cuda_error(                                          \
        #call, __FILE__, __LINE__,                                             \
        "cuBLAS status " + std::to_string(volt_cublas_status_));               \
  } while (false)

namespace volt::cuda {

/// Points `cublas` at `stream` unless it already is: cublasSetStream also
/// resets the handle's workspace to cuBLAS's default pool, so a handle given
/// a fixed workspace (needed inside graph captures) keeps it only while its
/// stream stays.
inline void bind_stream(cublasHandle_t cublas, cudaStream_t stream) {
  cudaStream_t current = nullptr;
  CUBLAS_CHECK(cublasGetStream(cublas, &current));
  if (current != stream)
    CUBLAS_CHECK(cublasSetStream(cublas, stream));
}

} // namespace volt::cuda
