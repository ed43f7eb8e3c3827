#pragma once

// The kernels behind cpu::matmul_nt (gpu/cpu/cpu_ops.hpp), exposed so that the
// tests can check that they agree bit for bit: a cluster whose nodes have
// different CPUs must compute the same tokens.

#include <cstdint>

namespace volt::cpu::detail {

/// Plain C++ with the summation order of `dot` (gpu/cpu/dot.hpp); runs on any
/// x86-64 CPU. Buffers as matmul_nt.
void matmul_nt_portable(const float* x, const float* w, int64_t n_rows,
                        int64_t in_dim, int64_t out_dim, float* y);

/// Whether this CPU runs AVX2 (the *_avx2 kernels here and in
/// attention_kernels.hpp).
bool avx2_available();

/// AVX2 intrinsics, same results as matmul_nt_portable to the bit. Call only
/// where avx2_available().
void matmul_nt_avx2(const float* x, const float* w, int64_t n_rows,
                    int64_t in_dim, int64_t out_dim, float* y);

/// matmul_nt_bf16's kernels over the weight rows [o0, o1) (the rest of y is
/// left alone), same results to the bit. Buffers as matmul_nt_bf16, weight
/// rows `w_stride` elements apart; call the AVX2 one only where
/// avx2_available().
void matmul_nt_bf16_portable(const float* x, const uint16_t* w, int64_t n_rows,
                             int64_t in_dim, int64_t o0, int64_t o1,
                             int64_t out_dim, float* y, int64_t w_stride);
void matmul_nt_bf16_avx2(const float* x, const uint16_t* w, int64_t n_rows,
                         int64_t in_dim, int64_t o0, int64_t o1,
                         int64_t out_dim, float* y, int64_t w_stride);

} // namespace volt::cpu::detail
