#pragma once

// Products whose row count changes from call to call (a prefill chunk, each
// expert's share of a step's tokens). cublasGemmEx consults cuBLAS's
// heuristics for every shape it has not seen, which costs host time per
// call; a prefill step of 2048 tokens over 4 layers spent about 25 ms of host
// time in them against 14 ms of kernels. Here cuBLASLt chooses an algorithm
// once per (output features, reduction length, output type, beta, row count
// rounded up to a power of two) and reuses it for every row count in that
// bucket. CPU twin: volt::cpu's matmul over the same bf16-rounded inputs.

#include <cstdint>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace volt::cuda {

/// Row-major y[m, n_out] = x[m, k] · w[n_out, k]ᵀ (+ beta · y), bf16
/// operands, f32 accumulation; cuBLAS's own call (on `fallback`, bound to
/// `stream`) where the bucket's algorithm does not take the shape.
/// - w (in):     [n_out, k] bf16, device
/// - x (in):     [m, k] bf16, device
/// - y (in/out): [m, n_out] f32 or bf16 (`y_type`), device; read when beta
///               is not 0
void row_gemm(cublasHandle_t fallback, const __nv_bfloat16* w,
              const __nv_bfloat16* x, int64_t m, int64_t k, int64_t n_out,
              void* y, cudaDataType_t y_type, float beta,
              cudaStream_t stream);

} // namespace volt::cuda
