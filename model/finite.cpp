#include "model/finite.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace volt {

namespace {

/// Scans `n` elements of `Bits` whose exponent field is `exponent`: all ones
/// there means NaN or infinity. Blocks of 64 are tested branch-free first,
/// which the compiler vectorises; a hit is then located element by element.
template <class Bits>
int64_t first_all_ones(const void* data, size_t n, Bits exponent) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  constexpr size_t block = 64;
  for (size_t at = 0; at < n; at += block) {
    auto len = std::min(block, n - at);
    Bits words[block];
    std::memcpy(words, bytes + at * sizeof(Bits), len * sizeof(Bits));
    bool any = false;
    for (size_t i = 0; i < len; ++i)
      any |= (words[i] & exponent) == exponent;
    if (!any)
      continue;
    for (size_t i = 0; i < len; ++i)
      if ((words[i] & exponent) == exponent)
        return static_cast<int64_t>(at + i);
  }
  return -1;
}

} // namespace

int64_t first_non_finite(const float* x, size_t n) {
  return first_all_ones<uint32_t>(x, n, 0x7f800000u);
}

int64_t first_non_finite(dtype type, const void* data, size_t n) {
  switch (type) {
    case dtype::f32: return first_all_ones<uint32_t>(data, n, 0x7f800000u);
    case dtype::bf16: return first_all_ones<uint16_t>(data, n, 0x7f80u);
    case dtype::f16: return first_all_ones<uint16_t>(data, n, 0x7c00u);
    default: return -1;
  }
}

std::string non_finite_name(float x) {
  if (std::isnan(x))
    return "NaN";
  return x > 0 ? "+inf" : "-inf";
}

} // namespace volt
