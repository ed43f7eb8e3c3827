#include "model/dtype.hpp"

#include <cstring>

namespace volt {

namespace {

uint32_t bits_of(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

float float_of(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

/// Reads element `i` of type T from possibly unaligned memory.
template <class T>
T load(const uint8_t* p, size_t i) {
  T x;
  std::memcpy(&x, p + i * sizeof(T), sizeof(T));
  return x;
}

template <class T>
void convert_ints(const uint8_t* p, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(load<T>(p, i));
}

} // namespace

size_t dtype_size(dtype x) {
  switch (x) {
    case dtype::f32:
    case dtype::i32: return 4;
    case dtype::f16:
    case dtype::bf16: return 2;
    case dtype::i8:
    case dtype::u8: return 1;
    case dtype::i64: return 8;
  }
  return 0;
}

std::string to_string(dtype x) {
  switch (x) {
    case dtype::f32: return "F32";
    case dtype::f16: return "F16";
    case dtype::bf16: return "BF16";
    case dtype::i8: return "I8";
    case dtype::i32: return "I32";
    case dtype::i64: return "I64";
    case dtype::u8: return "U8";
  }
  return "?";
}

bool parse_dtype(std::string_view name, dtype& out) {
  static constexpr std::pair<std::string_view, dtype> names[] = {
    {"F32", dtype::f32}, {"F16", dtype::f16}, {"BF16", dtype::bf16},
    {"I8", dtype::i8},   {"I32", dtype::i32}, {"I64", dtype::i64},
    {"U8", dtype::u8},
  };
  for (auto& [text, type] : names)
    if (text == name) {
      out = type;
      return true;
    }
  return false;
}

bool is_float(dtype x) {
  return x == dtype::f32 || x == dtype::f16 || x == dtype::bf16;
}

float bf16_to_f32(uint16_t x) {
  return float_of(static_cast<uint32_t>(x) << 16);
}

uint16_t f32_to_bf16(float x) {
  auto u = bits_of(x);
  if ((u & 0x7fffffffu)
      > 0x7f800000u) // NaN: truncating could clear every mantissa bit
    return static_cast<uint16_t>((u >> 16) | 0x0040u);
  // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even; a
  // carry into the exponent is the correct result (up to inf).
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

uint16_t bf16_rest(float x, uint16_t hi) {
  return f32_to_bf16(x - bf16_to_f32(hi));
}

float f16_to_f32(uint16_t x) {
  uint32_t sign = static_cast<uint32_t>(x & 0x8000u) << 16;
  uint32_t exp = (x >> 10) & 0x1fu;
  uint32_t mant = x & 0x3ffu;
  if (exp
      == 0x1f) // inf or NaN; the payload moves to the top of float's mantissa
    return float_of(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0)
      return float_of(sign);
    // Subnormal: shift the leading one into the implicit position.
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    mant &= 0x3ffu;
    return float_of(sign | (static_cast<uint32_t>(127 - 15 - e) << 23)
                    | (mant << 13));
  }
  return float_of(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

uint16_t f32_to_f16(float x) {
  auto u = bits_of(x);
  auto sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  auto abs = u & 0x7fffffffu;
  if (abs >= 0x7f800000u) {
    if (abs == 0x7f800000u)
      return sign | 0x7c00u;
    return static_cast<uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));
  }
  if (abs >= 0x477ff000u) // 65520 and above round to inf (65504 is the largest
                          // half)
    return sign | 0x7c00u;
  if (abs >= 0x38800000u) { // normal half (>= 2^-14)
    uint32_t h = ((((abs >> 23) - 127 + 15) << 10) | ((abs & 0x7fffffu) >> 13));
    uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
      ++h; // a carry into the exponent is still correct
    return static_cast<uint16_t>(sign | h);
  }
  if (abs <= 0x33000000u) // at most 2^-25: rounds to zero (2^-25 is a tie, zero
                          // is even)
    return sign;
  // Subnormal half: value / 2^-24 rounded to nearest even.
  uint32_t exp = abs >> 23;
  uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
  uint32_t shift = 126 - exp; // in [14, 24]
  uint32_t h = mant >> shift;
  uint32_t rem = mant & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1u)))
    ++h; // may become 0x400, the smallest normal, which is right
  return static_cast<uint16_t>(sign | h);
}

void convert_to_f32(dtype src, const void* data, size_t n, float* out) {
  auto p = static_cast<const uint8_t*>(data);
  switch (src) {
    case dtype::f32: std::memcpy(out, p, n * sizeof(float)); return;
    case dtype::f16:
      for (size_t i = 0; i < n; ++i)
        out[i] = f16_to_f32(load<uint16_t>(p, i));
      return;
    case dtype::bf16:
      for (size_t i = 0; i < n; ++i)
        out[i] = bf16_to_f32(load<uint16_t>(p, i));
      return;
    case dtype::i8: convert_ints<int8_t>(p, n, out); return;
    case dtype::i32: convert_ints<int32_t>(p, n, out); return;
    case dtype::i64: convert_ints<int64_t>(p, n, out); return;
    case dtype::u8: convert_ints<uint8_t>(p, n, out); return;
  }
}

} // namespace volt
