#pragma once

// bf16 rounding on the device, and floats carried as two bf16: hi = bf16(x),
// lo = bf16(x - hi), about 16 significant bits. The precise activations
// ([model] activations = "float32") keep every activation that feeds a
// product in this form, so products still run on bf16 tensor cores (hi and
// lo each against the same weights, summed in f32) at float32-like
// accuracy. CPU twins: volt::f32_to_bf16 and volt::bf16_rest
// (model/dtype.hpp), bit for bit.

#include <cstdint>

namespace volt::cuda {

/// x rounded to bf16 bits as volt::f32_to_bf16: nearest, ties to even; NaN
/// stays NaN (quiet, sign kept).
__device__ __forceinline__ uint16_t bf16_bits_of(float x) {
  uint32_t u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

/// The bf16 bits of what x's bf16 bits `hi` leave out: bf16(x - hi).
__device__ __forceinline__ uint16_t bf16_rest_bits(float x, uint16_t hi) {
  return bf16_bits_of(
    __fsub_rn(x, __uint_as_float(static_cast<uint32_t>(hi) << 16)));
}

} // namespace volt::cuda
