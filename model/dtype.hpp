#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace volt {

/// Element types of tensors in a checkpoint (the subset of safetensors' dtypes
/// we read).
enum class dtype : uint8_t { f32, f16, bf16, i8, i32, i64, u8 };

/// Bytes per element of `x`.
size_t dtype_size(dtype x);

/// The safetensors name of `x`: "F32", "F16", "BF16", "I8", "I32", "I64" or
/// "U8".
std::string to_string(dtype x);

/// Parses a safetensors dtype name; returns false (leaving `out` alone) for
/// anything else.
bool parse_dtype(std::string_view name, dtype& out);

/// True for f32, f16 and bf16.
bool is_float(dtype x);

/// Widens a bfloat16 bit pattern to float (exact).
float bf16_to_f32(uint16_t x);

/// Narrows to bfloat16 with round-to-nearest-even; NaN stays NaN (quiet, sign
/// kept).
uint16_t f32_to_bf16(float x);

/// What bf16 bits `hi` (x's rounding) leave out of x, as bf16: x ≈ hi + rest,
/// about 16 significant bits (the CUDA executor's precise activations).
uint16_t bf16_rest(float x, uint16_t hi);

/// Widens an IEEE binary16 bit pattern to float (exact, subnormals included).
float f16_to_f32(uint16_t x);

/// Narrows to IEEE binary16 with round-to-nearest-even; overflow gives inf,
/// tiny values give subnormals or signed zero, NaN stays NaN (quiet, sign and
/// top payload bits kept).
uint16_t f32_to_f16(float x);

/// Converts `n` elements at `data` (any alignment) to float. Integer types
/// convert by value.
void convert_to_f32(dtype src, const void* data, size_t n, float* out);

} // namespace volt
