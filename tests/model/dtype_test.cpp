#define CAF_SUITE model.dtype

#include "model/dtype.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

float from_bits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

} // namespace

CAF_TEST(names and sizes) {
  struct row {
    const char* name;
    dtype type;
    size_t size;
  };
  row rows[] = {{"F32", dtype::f32, 4},   {"F16", dtype::f16, 2},
                {"BF16", dtype::bf16, 2}, {"I8", dtype::i8, 1},
                {"I32", dtype::i32, 4},   {"I64", dtype::i64, 8},
                {"U8", dtype::u8, 1}};
  for (auto& r : rows) {
    dtype parsed = dtype::u8;
    CAF_CHECK(parse_dtype(r.name, parsed));
    CAF_CHECK(parsed == r.type);
    CAF_CHECK_EQUAL(to_string(r.type), r.name);
    CAF_CHECK_EQUAL(dtype_size(r.type), r.size);
  }
  dtype untouched = dtype::i8;
  CAF_CHECK(!parse_dtype("F64", untouched));
  CAF_CHECK(!parse_dtype("f32", untouched));
  CAF_CHECK(!parse_dtype("", untouched));
  CAF_CHECK(untouched == dtype::i8);
  CAF_CHECK(is_float(dtype::bf16) && !is_float(dtype::i32));
}

CAF_TEST(bf16 round trips and rounding) {
  // Every bf16 pattern widens exactly and narrows back to itself (NaNs stay
  // NaN).
  for (uint32_t h = 0; h < 0x10000; ++h) {
    auto f = bf16_to_f32(static_cast<uint16_t>(h));
    auto back = f32_to_bf16(f);
    if (std::isnan(f)) {
      if (!std::isnan(bf16_to_f32(back)) || (back & 0x8000) != (h & 0x8000))
        CAF_ERROR("bf16 NaN " << h << " came back as " << back);
    } else if (back != h) {
      CAF_ERROR("bf16 " << h << " came back as " << back);
    }
  }
  CAF_CHECK_EQUAL(f32_to_bf16(1.0f), 0x3F80);
  CAF_CHECK_EQUAL(f32_to_bf16(-2.0f), 0xC000);
  // Ties go to even: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7.
  CAF_CHECK_EQUAL(f32_to_bf16(from_bits(0x3F808000)), 0x3F80);
  CAF_CHECK_EQUAL(f32_to_bf16(from_bits(0x3F818000)), 0x3F82);
  CAF_CHECK_EQUAL(f32_to_bf16(from_bits(0x3F808001)), 0x3F81);
  CAF_CHECK_EQUAL(f32_to_bf16(from_bits(0x3F807FFF)), 0x3F80);
  // Rounding up from the largest finite value overflows to inf.
  CAF_CHECK_EQUAL(f32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  CAF_CHECK_EQUAL(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  CAF_CHECK_EQUAL(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  // A NaN whose payload lies only in the low bits must not become inf.
  auto nan = f32_to_bf16(from_bits(0x7F800001));
  CAF_CHECK(std::isnan(bf16_to_f32(nan)));
  CAF_CHECK(std::isnan(
    bf16_to_f32(f32_to_bf16(-std::numeric_limits<float>::quiet_NaN()))));
  CAF_CHECK_EQUAL(
    f32_to_bf16(-std::numeric_limits<float>::quiet_NaN()) & 0x8000, 0x8000);
  // Subnormal floats keep their bits (bf16 shares float's exponent range).
  CAF_CHECK_EQUAL(f32_to_bf16(from_bits(0x00010000)), 0x0001);
  CAF_CHECK_EQUAL(bf16_to_f32(0x0001), from_bits(0x00010000));
  CAF_CHECK_EQUAL(f32_to_bf16(-0.0f), 0x8000);
}

CAF_TEST(f16 round trips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    auto f = f16_to_f32(static_cast<uint16_t>(h));
    auto back = f32_to_f16(f);
    if (std::isnan(f)) {
      if ((h & 0x7C00) != 0x7C00 || (back & 0x7C00) != 0x7C00
          || (back & 0x3FF) == 0 || (back & 0x8000) != (h & 0x8000))
        CAF_ERROR("f16 NaN " << h << " came back as " << back);
    } else if (back != h) {
      CAF_ERROR("f16 " << h << " came back as " << back << " via " << f);
    }
  }
  CAF_CHECK_EQUAL(f16_to_f32(0x3C00), 1.0f);
  CAF_CHECK_EQUAL(f16_to_f32(0xC000), -2.0f);
  CAF_CHECK_EQUAL(f16_to_f32(0x7BFF), 65504.0f);
  CAF_CHECK_EQUAL(f16_to_f32(0x0001),
                  std::ldexp(1.0f, -24)); // smallest subnormal
  CAF_CHECK_EQUAL(f16_to_f32(0x03FF),
                  std::ldexp(1023.0f, -24)); // largest subnormal
  CAF_CHECK_EQUAL(f16_to_f32(0x0400), std::ldexp(1.0f, -14)); // smallest normal
  CAF_CHECK(std::isinf(f16_to_f32(0x7C00)) && f16_to_f32(0x7C00) > 0);
  CAF_CHECK(std::isinf(f16_to_f32(0xFC00)) && f16_to_f32(0xFC00) < 0);
  CAF_CHECK(std::isnan(f16_to_f32(0x7E00)));
  CAF_CHECK(std::signbit(f16_to_f32(0x8000)));
}

CAF_TEST(f16 rounding) {
  // Ties to even around 1: the f16 spacing there is 2^-10.
  CAF_CHECK_EQUAL(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  CAF_CHECK_EQUAL(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  CAF_CHECK_EQUAL(
    f32_to_f16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3C01);
  // Overflow: 65519 rounds down to 65504, 65520 (the tie) up to inf.
  CAF_CHECK_EQUAL(f32_to_f16(65519.0f), 0x7BFF);
  CAF_CHECK_EQUAL(f32_to_f16(65520.0f), 0x7C00);
  CAF_CHECK_EQUAL(f32_to_f16(-1e10f), 0xFC00);
  CAF_CHECK_EQUAL(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7C00);
  // Subnormals: 2^-25 is a tie between 0 and the smallest subnormal and goes to
  // 0 (even); anything above it goes to the smallest subnormal; 3 * 2^-25 ties
  // up to 2 * 2^-24.
  CAF_CHECK_EQUAL(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);
  CAF_CHECK_EQUAL(f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)),
                  0x0001);
  CAF_CHECK_EQUAL(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);
  CAF_CHECK_EQUAL(f32_to_f16(-std::ldexp(1.0f, -30)), 0x8000);
  CAF_CHECK_EQUAL(f32_to_f16(std::numeric_limits<float>::denorm_min()), 0x0000);
  // Just below the smallest normal rounds up into it.
  CAF_CHECK_EQUAL(f32_to_f16(std::nextafter(std::ldexp(1.0f, -14), 0.0f)),
                  0x0400);
  CAF_CHECK_EQUAL(f32_to_f16(std::ldexp(1023.5f, -24)), 0x0400);
  CAF_CHECK_EQUAL(f32_to_f16(std::ldexp(1022.5f, -24)), 0x03FE);
  // NaN stays NaN with its sign.
  auto nan = f32_to_f16(-std::numeric_limits<float>::quiet_NaN());
  CAF_CHECK((nan & 0x7C00) == 0x7C00 && (nan & 0x3FF) != 0
            && (nan & 0x8000) != 0);
  CAF_CHECK(std::isnan(f16_to_f32(f32_to_f16(from_bits(0x7F800001)))));
}

#ifdef __FLT16_MAX__
CAF_TEST(f16 narrowing matches the compiler _Float16 conversion) {
  // The compiler's conversion is an independent reference; walk float bit
  // patterns with a prime stride so every exponent and many mantissas are
  // covered.
  size_t mismatches = 0;
  for (uint64_t u = 0; u < (1ull << 32); u += 4099) {
    auto f = from_bits(static_cast<uint32_t>(u));
    if (std::isnan(f))
      continue;
    auto ref = static_cast<_Float16>(f);
    uint16_t ref_bits;
    std::memcpy(&ref_bits, &ref, 2);
    if (f32_to_f16(f) != ref_bits && ++mismatches < 5)
      CAF_ERROR("f32_to_f16(" << f << ") = " << f32_to_f16(f)
                              << ", _Float16 gives " << ref_bits);
  }
  CAF_CHECK_EQUAL(mismatches, 0u);
}
#endif

CAF_TEST(convert_to_f32 reads unaligned input of every type) {
  uint8_t buf[64] = {};
  auto at = buf + 1; // deliberately misaligned
  uint16_t halves[3] = {0x3C00, 0xC000, 0x0001};
  std::memcpy(at, halves, sizeof(halves));
  float out[4];
  convert_to_f32(dtype::f16, at, 3, out);
  CAF_CHECK_EQUAL(out[0], 1.0f);
  CAF_CHECK_EQUAL(out[1], -2.0f);
  CAF_CHECK_EQUAL(out[2], std::ldexp(1.0f, -24));
  uint16_t bhalves[2] = {0x3F80, 0xC040};
  std::memcpy(at, bhalves, sizeof(bhalves));
  convert_to_f32(dtype::bf16, at, 2, out);
  CAF_CHECK_EQUAL(out[0], 1.0f);
  CAF_CHECK_EQUAL(out[1], -3.0f);
  float fs[2] = {0.25f, -7.5f};
  std::memcpy(at, fs, sizeof(fs));
  convert_to_f32(dtype::f32, at, 2, out);
  CAF_CHECK_EQUAL(out[0], 0.25f);
  CAF_CHECK_EQUAL(out[1], -7.5f);
  int64_t ls[2] = {-3, 1 << 20};
  std::memcpy(at, ls, sizeof(ls));
  convert_to_f32(dtype::i64, at, 2, out);
  CAF_CHECK_EQUAL(out[0], -3.0f);
  CAF_CHECK_EQUAL(out[1], 1048576.0f);
  int8_t bs[2] = {-128, 127};
  std::memcpy(at, bs, 2);
  convert_to_f32(dtype::i8, at, 2, out);
  CAF_CHECK_EQUAL(out[0], -128.0f);
  convert_to_f32(dtype::u8, at, 2, out);
  CAF_CHECK_EQUAL(out[0], 128.0f);
  CAF_CHECK_EQUAL(out[1], 127.0f);
  CAF_CHECK_EQUAL(bits(out[1]), bits(127.0f));
}
