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

} // namespace volt::cpu::detail
