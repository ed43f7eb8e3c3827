#pragma once

// Device-side random fills for benchmarks and tests: gigabytes of weights are
// drawn in place instead of on the host. Never zeros: zeros hide unwritten
// outputs and can run faster than real data.

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace volt::cuda {

/// out[i] = uniform(-scale, scale) from a counter hash of (seed, i).
/// - out (out): [n] bf16
void fill_uniform(__nv_bfloat16* out, int64_t n, float scale, uint64_t seed,
                  cudaStream_t stream);

/// out[i] = uniform(-scale, scale).
/// - out (out): [n] f32
void fill_uniform(float* out, int64_t n, float scale, uint64_t seed,
                  cudaStream_t stream);

/// out[i] = uniform integer in [-127, 127].
/// - out (out): [n] int8
void fill_uniform(int8_t* out, int64_t n, uint64_t seed, cudaStream_t stream);

} // namespace volt::cuda
