// Dense CPU ops: embedding lookup, the nn.Linear product and argmax.

#include <algorithm>
#include <cstring>

#include "gpu/cpu/cpu_ops.hpp"
#include "gpu/cpu/dot.hpp"
#include "gpu/cpu/matmul_kernels.hpp"

namespace volt::cpu {

void embedding(const float* table, int64_t hidden, const int32_t* ids,
               int64_t n_tokens, float* out) {
  for (int64_t t = 0; t < n_tokens; ++t)
    std::memcpy(out + t * hidden, table + static_cast<int64_t>(ids[t]) * hidden,
                sizeof(float) * static_cast<size_t>(hidden));
}

namespace detail {

void matmul_nt_portable(const float* x, const float* w, int64_t n_rows,
                        int64_t in_dim, int64_t out_dim, float* y) {
  // Weight rows are the large operand: walk them once and reuse each row for a
  // block of input rows while it is in cache.
  constexpr int64_t row_block = 8;
  for (int64_t r0 = 0; r0 < n_rows; r0 += row_block) {
    auto r1 = std::min(n_rows, r0 + row_block);
    for (int64_t o = 0; o < out_dim; ++o) {
      const float* w_row = w + o * in_dim;
      int64_t r = r0;
      for (; r + 4 <= r1; r += 4) {
        float out[4];
        dot4(x + r * in_dim, x + (r + 1) * in_dim, x + (r + 2) * in_dim,
             x + (r + 3) * in_dim, w_row, in_dim, out);
        for (int k = 0; k < 4; ++k)
          y[(r + k) * out_dim + o] = out[k];
      }
      for (; r < r1; ++r)
        y[r * out_dim + o] = dot(x + r * in_dim, w_row, in_dim);
    }
  }
}

} // namespace detail

// Every node picks its kernel at run time and every kernel rounds alike, so
// nodes with different CPUs agree bit for bit. (AVX-512 measured no faster
// than AVX2 here.)
void matmul_nt(const float* x, const float* w, int64_t n_rows, int64_t in_dim,
               int64_t out_dim, float* y) {
  if (detail::avx2_available())
    detail::matmul_nt_avx2(x, w, n_rows, in_dim, out_dim, y);
  else
    detail::matmul_nt_portable(x, w, n_rows, in_dim, out_dim, y);
}

int64_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best])
      best = i;
  return best;
}

} // namespace volt::cpu
