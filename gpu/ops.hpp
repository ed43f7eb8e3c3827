#pragma once

// Backend-neutral description of Volt's compute ops. Every op exists on the CPU
// (gpu/cpu/cpu_ops.hpp, the reference that CI runs) and, where it pays off, in
// CUDA (gpu/cuda/). Buffers are row-major and float32 on the CPU; shapes are
// given in the comments of each declaration as [rows, cols].

#include <cstdint>

namespace volt {

/// K/V storage of ONE layer as a pool of fixed-size pages. A sequence's block
/// table maps its logical page i (token positions [i*page_size,
/// (i+1)*page_size)) to a physical page. Layout of `k` and `v`: [num_pages,
/// page_size, n_kv_heads, head_dim], so one token's heads are contiguous (one
/// copy per token on write) and a CUDA kernel can read a page as a tile.
struct kv_pages {
  float* k = nullptr;
  float* v = nullptr;
  int64_t num_pages = 0;
  int64_t page_size = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;

  /// Floats per token slot (all heads of K, or of V).
  int64_t token_stride() const {
    return n_kv_heads * head_dim;
  }

  /// Floats per page.
  int64_t page_stride() const {
    return page_size * token_stride();
  }
};

/// Shape parameters of grouped-query attention.
struct attention_dims {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  /// Keys older than `sliding_window` positions are masked; 0 disables the
  /// window.
  int64_t sliding_window = 0;
};

} // namespace volt
