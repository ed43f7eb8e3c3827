#pragma once

// Kernels of a decode step that may start before the kernel ahead of them in
// the stream has finished (Hopper's programmatic dependent launch). A decode
// step is a chain of about twelve kernels per layer, most of them a few
// microseconds long; launched plainly, each one's blocks are scheduled only
// after the previous grid has drained, and a weight-streaming kernel's first
// loads only then start their trip to HBM. Chained, the next grid's blocks
// are resident while the previous one finishes, and a kernel whose weights
// do not depend on the previous kernel can pull them into L2 meanwhile.
//
// The contract, for every kernel launched with launch_chained:
// - it calls chain_start() before it reads anything an earlier kernel of the
//   stream wrote, writes anything, or returns (every block, unconditionally:
//   a grid that could finish without waiting would let the kernel after it
//   run ahead of the one before it);
// - before chain_start() it may only issue L2 prefetches (never wrong, L2 is
//   the device's point of coherence) and read what the kernel two back or
//   earlier wrote: a chained kernel starts only once every block of the
//   kernel ahead has passed its own chain_start(), which returns only after
//   the kernel before that has finished and its writes are visible.
// A kernel launched plainly may call chain_start() too: it does nothing then.

#include <utility>

#include <cuda_runtime_api.h>

#include "gpu/cuda/cuda_check.hpp"

namespace volt::cuda {

/// Whether launch_chained chains (process-wide; on by default). `bench
/// model --chained-launch off` times a step without it.
void set_chained_launch(bool on);
bool chained_launch();

#ifdef __CUDACC__

/// Waits until the kernel ahead in the stream has finished and its writes
/// are visible, then lets the kernel behind this one be scheduled.
__device__ __forceinline__ void chain_start() {
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

/// Asks L2 for the 128-byte line holding p (a hint: no registers, no fault
/// semantics the caller relies on, never stale).
__device__ __forceinline__ void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

/// kernel<<<grid, block, smem, stream>>>(args...), chained to the kernel
/// ahead of it in the stream while chained_launch() is on.
template <class... Params, class... Args>
void launch_chained(void (*kernel)(Params...), dim3 grid, dim3 block,
                    size_t smem, cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  if (chained_launch()) {
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  CUDA_CHECK(cudaLaunchKernelEx(&config, kernel,
                                std::forward<Args>(args)...));
}

#endif

} // namespace volt::cuda
