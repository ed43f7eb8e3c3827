#define CAF_SUITE gpu.cuda_model_ops

// The dense ops and the paged attention of the GPU executor against their CPU
// twins on fresh random inputs (never zeros), every output poisoned with 0xff
// bytes (NaN as f32 and bf16, -1 as i32) before each run, odd sizes (1, 3, 31
// and 257 rows; hidden 64 to 4096 and 100; head_dim 16 to 128; groups 1 to 8;
// pages of 1, 5 and 16 slots; contexts of 1 to 3000 keys mixing a prefill
// chunk with decode rows, shuffled pages, sliding windows). Bounds:
// - embedding, to_bf16, to_f32, quantize_int8_rows (q and scale bits),
//   argmax (ties, NaN and -inf rows included): exact;
// - add_rms_norm's residual (the partials added in order): exact;
// - rms_norm and rope f32 outputs: ‖got − want‖/‖want‖ ≤ 1e-5; their bf16
//   outputs against the CPU result rounded to bf16: ≤ 1e-2 (rope computes
//   the CPU's products without contraction, so its outputs should be
//   bit-identical; the count of differing values is printed);
// - attention (bf16 out) against cpu::paged_attention on the same bf16 K/V
//   and f32 q: worst row's relative error ≤ 1e-2; workspace poisoned too.
// Without a GPU (or a CUDA build) every case prints VOLT_GPU_SKIPPED and ctest
// reports the suite as skipped.

#include "model/finite.hpp"
#include "tests/gpu/gpu_test_util.hpp"
#include "tests/test_dsl.hpp"

#ifdef VOLT_HAVE_CUDA

#  include <algorithm>
#  include <cstdio>
#  include <cstring>
#  include <string>
#  include <numeric>

#  include "gpu/cpu/cpu_ops.hpp"
#  include "gpu/cpu/quant.hpp"
#  include "gpu/cuda/attention.cuh"
#  include "gpu/cuda/dense_ops.cuh"
#  include "model/sampler.hpp"
#  include "tests/gpu/cuda_test_util.hpp"

using namespace volt;
using namespace volt::test;
using cuda::device_buffer;

namespace {

std::vector<float> widen(const std::vector<uint16_t>& bf16) {
  std::vector<float> out(bf16.size());
  for (size_t i = 0; i < bf16.size(); ++i)
    out[i] = bf16_to_f32(bf16[i]);
  return out;
}

std::vector<int32_t> random_ints(size_t n, int32_t lo, int32_t hi,
                                 std::mt19937& gen) {
  std::uniform_int_distribution<int32_t> dist{lo, hi};
  std::vector<int32_t> out(n);
  for (auto& x : out)
    x = dist(gen);
  return out;
}

} // namespace

CAF_TEST(embedding matches the CPU twin exactly) {
  if (!gpu_available())
    return;
  std::mt19937 gen{11};
  const int64_t vocab = 1000;
  for (int64_t hidden : {64, 128, 4096, 100})
    for (int64_t n : {1, 3, 31, 257}) {
      auto table = to_bf16_bits(uniform_floats(vocab * hidden, gen));
      auto ids = random_ints(n, 0, vocab - 1, gen);
      ids[0] = vocab - 1;
      std::vector<float> want(n * hidden);
      cpu::embedding(widen(table).data(), hidden, ids.data(), n, want.data());
      auto d_table = upload(table);
      auto d_ids = upload(ids);
      auto d_out = poisoned(sizeof(float) * want.size());
      cuda::embedding(d_table.get<__nv_bfloat16>(), hidden,
                      d_ids.get<int32_t>(), n, d_out.get<float>(), nullptr);
      auto got = download<float>(d_out, want.size());
      CAF_CHECK_EQUAL(std::memcmp(got.data(), want.data(), 4 * want.size()), 0);
    }
}

CAF_TEST(rms_norm matches the CPU twin with and without a row gather) {
  if (!gpu_available())
    return;
  std::mt19937 gen{12};
  double worst_f32 = 0, worst_bf16 = 0, worst_pair = 0;
  int mode = 0;
  for (int64_t dim : {64, 128, 4096, 100})
    for (int64_t n : {1, 3, 31, 257}) {
      const bool gather = ++mode % 2 == 0;
      const bool want_f32 = mode % 3 != 1;
      const bool want_bf16 = mode % 3 != 2;
      const int64_t n_src = gather ? n + 5 : n;
      auto x = uniform_floats(n_src * dim, gen, 3.0f);
      auto weight = uniform_floats(dim, gen, 0.5f);
      for (auto& w : weight)
        w += 1.0f;
      auto rows = random_ints(n, 0, static_cast<int32_t>(n_src - 1), gen);
      std::vector<float> src(n * dim);
      for (int64_t r = 0; r < n; ++r)
        std::copy_n(x.begin() + (gather ? rows[r] : r) * dim, dim,
                    src.begin() + r * dim);
      std::vector<float> want(src.size());
      cpu::rms_norm(src.data(), weight.data(), n, dim, 1e-5f, want.data());
      auto d_x = upload(x);
      auto d_rows = upload(rows);
      auto d_w = upload(weight);
      auto d_f32 = poisoned(sizeof(float) * want.size());
      auto d_bf16 = poisoned(2 * want.size());
      // The precise activations' second half, with both outputs: a pair
      // equal to the f32 output to about 2^-17.
      const bool want_lo = want_bf16 && want_f32 && n % 2 == 1;
      auto d_lo = poisoned(2 * want.size());
      cuda::rms_norm(d_x.get<float>(), gather ? d_rows.get<int32_t>() : nullptr,
                     d_w.get<float>(), n, dim, 1e-5f,
                     want_bf16 ? d_bf16.get<__nv_bfloat16>() : nullptr,
                     want_lo ? d_lo.get<__nv_bfloat16>() : nullptr,
                     want_f32 ? d_f32.get<float>() : nullptr, nullptr);
      if (want_f32) {
        auto err = rel_error(download<float>(d_f32, want.size()), want);
        worst_f32 = std::max(worst_f32, err);
        CAF_CHECK_LESS_OR_EQUAL(err, 1e-5);
      }
      if (want_bf16) {
        auto got = widen(download<uint16_t>(d_bf16, want.size()));
        auto err = rel_error(got, round_bf16(want));
        worst_bf16 = std::max(worst_bf16, err);
        CAF_CHECK_LESS_OR_EQUAL(err, 1e-2);
      }
      if (want_lo) {
        auto f32 = download<float>(d_f32, want.size());
        auto hi = download<uint16_t>(d_bf16, want.size());
        auto lo = download<uint16_t>(d_lo, want.size());
        std::vector<float> pair(want.size());
        size_t wrong_rest = 0;
        for (size_t i = 0; i < want.size(); ++i) {
          pair[i] = bf16_to_f32(hi[i]) + bf16_to_f32(lo[i]);
          wrong_rest += lo[i] != bf16_rest(f32[i], hi[i]);
        }
        CAF_CHECK_EQUAL(wrong_rest, 0u);
        auto err = rel_error(pair, want);
        worst_pair = std::max(worst_pair, err);
        CAF_CHECK_LESS_OR_EQUAL(err, 2e-5);
      }
    }
  CAF_MESSAGE("rms_norm worst f32 " << sci(worst_f32) << ", bf16 "
                                    << sci(worst_bf16) << ", bf16 pair "
                                    << sci(worst_pair));
}

CAF_TEST(add_rms_norm adds the partial products to the residual then norms) {
  if (!gpu_available())
    return;
  std::mt19937 gen{15};
  double worst = 0;
  for (int64_t dim : {64, 4096, 100})
    for (int64_t n : {1, 5, 32})
      for (int64_t n_parts : {1, 2, 8}) {
        auto x = uniform_floats(n * dim, gen, 3.0f);
        auto parts = uniform_floats(n_parts * n * dim, gen, 1.0f);
        auto weight = uniform_floats(dim, gen, 0.5f);
        for (auto& w : weight)
          w += 1.0f;
        // The partials in order, then onto the residual.
        std::vector<float> sum(parts.begin(), parts.begin() + n * dim);
        for (int64_t p = 1; p < n_parts; ++p)
          for (int64_t i = 0; i < n * dim; ++i)
            sum[i] += parts[p * n * dim + i];
        std::vector<float> added(n * dim);
        for (int64_t i = 0; i < n * dim; ++i)
          added[i] = x[i] + sum[i];
        std::vector<float> want(added.size());
        cpu::rms_norm(added.data(), weight.data(), n, dim, 1e-5f, want.data());
        auto d_x = upload(x);
        auto d_parts = upload(parts);
        auto d_w = upload(weight);
        auto d_f32 = poisoned(sizeof(float) * want.size());
        auto d_bf16 = poisoned(2 * want.size());
        cuda::add_rms_norm(d_x.get<float>(), d_parts.get<float>(), n_parts,
                           d_w.get<float>(), n, dim, 1e-5f,
                           d_bf16.get<__nv_bfloat16>(), nullptr,
                           d_f32.get<float>(), nullptr);
        auto got_x = download<float>(d_x, added.size());
        CAF_CHECK(std::memcmp(got_x.data(), added.data(),
                              4 * added.size())
                  == 0);
        auto err = rel_error(download<float>(d_f32, want.size()), want);
        worst = std::max(worst, err);
        CAF_CHECK_LESS_OR_EQUAL(err, 1e-5);
        auto got_bf16 = widen(download<uint16_t>(d_bf16, want.size()));
        CAF_CHECK_LESS_OR_EQUAL(rel_error(got_bf16, round_bf16(want)), 1e-2);
      }
  CAF_MESSAGE("add_rms_norm worst f32 " << sci(worst));
}

CAF_TEST(rope_kv_write matches rope and the bf16 KV write) {
  if (!gpu_available())
    return;
  std::mt19937 gen{13};
  const double theta = 1e6;
  const int64_t max_pos = 4096;
  struct shape {
    int64_t heads, kv_heads, head_dim, page_size;
  };
  size_t differing = 0;
  double worst_q = 0;
  for (auto s : {shape{4, 4, 16, 1}, shape{8, 2, 32, 16}, shape{32, 8, 128, 5},
                 shape{6, 2, 64, 16}})
    for (int64_t n : {1, 3, 31, 257}) {
      const int64_t hd = s.head_dim, half = hd / 2;
      const int64_t width = (s.heads + 2 * s.kv_heads) * hd;
      const int64_t row = s.kv_heads * hd;
      const int64_t n_slots = ((2 * n + s.page_size - 1) / s.page_size + 1)
                              * s.page_size;
      std::vector<float> cos_t(max_pos * half), sin_t(max_pos * half);
      for (int64_t p = 0; p < max_pos; ++p)
        for (int64_t i = 0; i < half; ++i) {
          double angle = static_cast<double>(p)
                         * std::pow(theta, -2.0 * static_cast<double>(i)
                                             / static_cast<double>(hd));
          cos_t[p * half + i] = static_cast<float>(std::cos(angle));
          sin_t[p * half + i] = static_cast<float>(std::sin(angle));
        }
      // q/k/v as the partial sums of a K-split product (1 to 3 of them),
      // added in order: the reference rotates their float sum.
      const int64_t n_parts = 1 + n % 3;
      auto parts = uniform_floats(n_parts * n * width, gen, 2.0f);
      std::vector<float> qkv(parts.begin(), parts.begin() + n * width);
      for (int64_t p = 1; p < n_parts; ++p)
        for (int64_t i = 0; i < n * width; ++i)
          qkv[i] += parts[p * n * width + i];
      auto pos = random_ints(n, 0, max_pos - 1, gen);
      std::vector<int32_t> slots(n_slots);
      std::iota(slots.begin(), slots.end(), 0);
      std::shuffle(slots.begin(), slots.end(), gen);
      slots.resize(n);
      if (n >= 3)
        slots[1] = -1; // a padding row: rotates q, writes no K/V
      std::vector<float> q(n * s.heads * hd), k(n * row), v(n * row);
      for (int64_t t = 0; t < n; ++t) {
        const float* src = qkv.data() + t * width;
        std::copy_n(src, s.heads * hd, q.begin() + t * s.heads * hd);
        std::copy_n(src + s.heads * hd, row, k.begin() + t * row);
        std::copy_n(src + s.heads * hd + row, row, v.begin() + t * row);
      }
      cpu::rope(q.data(), s.heads, k.data(), s.kv_heads, pos.data(), n, hd,
                theta);
      auto d_qkv = upload(parts);
      auto d_pos = upload(pos);
      auto d_slots = upload(slots);
      auto d_cos = upload(cos_t);
      auto d_sin = upload(sin_t);
      auto d_q = poisoned(sizeof(float) * q.size());
      auto d_k = poisoned(2 * n_slots * row);
      auto d_v = poisoned(2 * n_slots * row);
      // Every other run also writes the second halves of K and V.
      const bool rest = n % 2 == 1;
      auto d_k_lo = poisoned(2 * n_slots * row);
      auto d_v_lo = poisoned(2 * n_slots * row);
      cuda::qkv_layout layout{s.heads, s.kv_heads, hd, s.page_size};
      cuda::rope_kv_write(d_qkv.get<float>(), n_parts, d_pos.get<int32_t>(),
                          d_slots.get<int32_t>(), d_cos.get<float>(),
                          d_sin.get<float>(), layout, n, d_q.get<float>(),
                          d_k.get<__nv_bfloat16>(), d_v.get<__nv_bfloat16>(),
                          rest ? d_k_lo.get<__nv_bfloat16>() : nullptr,
                          rest ? d_v_lo.get<__nv_bfloat16>() : nullptr,
                          nullptr);
      auto got_q = download<float>(d_q, q.size());
      worst_q = std::max(worst_q, rel_error(got_q, q));
      CAF_CHECK_LESS_OR_EQUAL(rel_error(got_q, q), 1e-5);
      for (size_t i = 0; i < q.size(); ++i)
        differing += std::memcmp(&got_q[i], &q[i], 4) != 0;
      // Written slots hold the bf16 rows; every other slot is untouched.
      auto got_k = download<uint16_t>(d_k, n_slots * row);
      auto got_v = download<uint16_t>(d_v, n_slots * row);
      auto got_k_lo = download<uint16_t>(d_k_lo, n_slots * row);
      auto got_v_lo = download<uint16_t>(d_v_lo, n_slots * row);
      std::vector<float> got_kv, want_kv, got_pairs, want_f32;
      std::vector<bool> written(n_slots, false);
      for (int64_t t = 0; t < n; ++t)
        for (int64_t i = 0; slots[t] >= 0 && i < row; ++i) {
          written[slots[t]] = true;
          const auto at = slots[t] * row + i;
          for (auto [got, got_lo, want] :
               {std::tuple{&got_k, &got_k_lo, k[t * row + i]},
                std::tuple{&got_v, &got_v_lo, v[t * row + i]}}) {
            uint16_t bits = (*got)[at];
            differing += bits != f32_to_bf16(want);
            got_kv.push_back(bf16_to_f32(bits));
            want_kv.push_back(bf16_to_f32(f32_to_bf16(want)));
            if (rest) {
              differing += (*got_lo)[at] != bf16_rest(want, bits);
              got_pairs.push_back(bf16_to_f32(bits)
                                  + bf16_to_f32((*got_lo)[at]));
              want_f32.push_back(want);
            }
          }
        }
      CAF_CHECK_LESS_OR_EQUAL(rel_error(got_kv, want_kv), 1e-2);
      if (rest)
        CAF_CHECK_LESS_OR_EQUAL(rel_error(got_pairs, want_f32), 2e-5);
      size_t touched = 0;
      for (int64_t i = 0; i < n_slots * row; ++i)
        touched += !written[i / row]
                   && (got_k[i] != 0xffff || got_v[i] != 0xffff
                       || got_k_lo[i] != 0xffff || got_v_lo[i] != 0xffff);
      CAF_CHECK_EQUAL(touched, 0u);
    }
  CAF_MESSAGE("rope worst q " << sci(worst_q)
                              << ", values differing from the CPU's "
                              << differing);
}

CAF_TEST(argmax_rows picks the first maximum and flags non finite rows) {
  if (!gpu_available())
    return;
  std::mt19937 gen{14};
  std::normal_distribution<float> normal{0.0f, 3.0f};
  struct shape {
    int64_t rows, vocab;
  };
  for (auto s : {shape{1, 1}, shape{3, 7}, shape{31, 32000}, shape{257, 1001},
                 shape{2, 256000}, shape{5, 262144}}) {
    std::vector<float> x(s.rows * s.vocab);
    for (auto& v : x)
      v = normal(gen);
    std::uniform_int_distribution<int64_t> col{0, s.vocab - 1};
    for (int64_t r = 0; r < s.rows; ++r) {
      float* row = x.data() + r * s.vocab;
      switch (r % 6) {
        case 0: // a tie at the top: the lower id wins
          row[col(gen)] = 100.0f;
          row[col(gen)] = 100.0f;
          break;
        case 1: // NaN everywhere but a few: -1
          for (int64_t i = 0; i < s.vocab; ++i)
            if (i % 97 != 5)
              row[i] = NAN;
          break;
        case 2: std::fill_n(row, s.vocab, NAN); break; // all NaN: -1
        case 3: // -inf and NaN only: -1
          std::fill_n(row, s.vocab, -INFINITY);
          row[0] = NAN;
          break;
        case 4: row[col(gen)] = INFINITY; break; // one +inf: -1
        default: break;
      }
    }
    // The reference: token_sampler's greedy pick (temperature 0), -1 for a
    // row with a NaN or an infinity.
    token_sampler sampler{0, 0};
    std::vector<int32_t> want(s.rows);
    for (int64_t r = 0; r < s.rows; ++r) {
      const float* row = x.data() + r * s.vocab;
      want[r] = first_non_finite(row, static_cast<size_t>(s.vocab)) >= 0
                  ? -1
                  : sampler.sample(row, s.vocab, {});
    }
    auto d_x = upload(x);
    auto d_out = poisoned(sizeof(int32_t) * s.rows);
    cuda::argmax_rows(d_x.get<float>(), s.rows, s.vocab, d_out.get<int32_t>(),
                      nullptr);
    CAF_CHECK(download<int32_t>(d_out, s.rows) == want);
  }
}

namespace {

/// Checkpoint bytes of `type` at byte `offset` of the device buffer it
/// returns: every f16 and bf16 bit pattern, or f32 specials (NaN payloads,
/// infinities, denormals, bf16 rounding ties) and random bits.
std::vector<uint8_t> conversion_input(dtype type, std::mt19937& gen) {
  std::vector<uint8_t> bytes;
  auto put = [&](uint32_t bits, int size) {
    for (int i = 0; i < size; ++i)
      bytes.push_back(static_cast<uint8_t>(bits >> (8 * i)));
  };
  if (type != dtype::f32) {
    for (uint32_t h = 0; h < 65536; ++h)
      put(h, 2);
    return bytes;
  }
  for (uint32_t sign : {0u, 0x80000000u}) {
    for (uint32_t bits : {0x7f800000u, 0x7f800001u, 0x7fc00000u, 0x7fffffffu,
                          0x7f810000u, 0x7f7fffffu, 0x7f7f8000u, 0x00000001u,
                          0x00008000u, 0x00018000u, 0x007fffffu, 0x3f808000u,
                          0x3f818000u, 0x3f807fffu, 0x3f808001u, 0x00000000u})
      put(sign | bits, 4);
  }
  std::uniform_int_distribution<uint32_t> any;
  for (int i = 0; i < 70001; ++i) {
    uint32_t u = any(gen);
    put(i % 4 == 0 ? (u & 0xffff0000u) | 0x8000u : u, 4); // ties, often
  }
  return bytes;
}

} // namespace

CAF_TEST(to_bf16 and to_f32 convert bit for bit at any alignment) {
  if (!gpu_available())
    return;
  std::mt19937 gen{15};
  for (dtype type : {dtype::f32, dtype::f16, dtype::bf16})
    for (size_t offset : {0, 1, 2}) {
      auto bytes = conversion_input(type, gen);
      const size_t n = bytes.size() / dtype_size(type);
      std::vector<float> wide(n);
      convert_to_f32(type, bytes.data(), n, wide.data());
      std::vector<uint16_t> want16(n);
      for (size_t i = 0; i < n; ++i)
        want16[i] = type == dtype::bf16 ? static_cast<uint16_t>(
                      bytes[2 * i] | bytes[2 * i + 1] << 8)
                                        : f32_to_bf16(wide[i]);
      std::vector<uint8_t> shifted(offset, 0x5a);
      shifted.insert(shifted.end(), bytes.begin(), bytes.end());
      auto d_src = upload(shifted);
      const void* src = d_src.get<uint8_t>() + offset;
      auto d_16 = poisoned(2 * n);
      auto d_32 = poisoned(4 * n);
      cuda::to_bf16(type, src, static_cast<int64_t>(n),
                    d_16.get<__nv_bfloat16>(), nullptr);
      cuda::to_f32(type, src, static_cast<int64_t>(n), d_32.get<float>(),
                   nullptr);
      auto got16 = download<uint16_t>(d_16, n);
      auto got32 = download<float>(d_32, n);
      CAF_CHECK(got16 == want16);
      CAF_CHECK_EQUAL(std::memcmp(got32.data(), wide.data(), 4 * n), 0);
    }
}

CAF_TEST(quantize_int8_rows matches the CPU bit for bit) {
  if (!gpu_available())
    return;
  std::mt19937 gen{16};
  std::uniform_real_distribution<float> exponent{-20.0f, 6.0f};
  struct shape {
    int64_t rows, cols;
  };
  for (dtype type : {dtype::f32, dtype::f16, dtype::bf16})
    for (auto s : {shape{1, 1}, shape{3, 7}, shape{31, 4096}, shape{257, 64},
                   shape{4, 14336}}) {
      std::vector<float> w(s.rows * s.cols);
      for (int64_t r = 0; r < s.rows; ++r) {
        // Rows of very different magnitudes; one row of zeros, one with a
        // single non-zero.
        auto row = uniform_floats(s.cols, gen, std::exp2(exponent(gen)));
        if (r == 1)
          std::fill(row.begin(), row.end(), 0.0f);
        if (r == 2)
          std::fill(row.begin() + 1, row.end(), 0.0f);
        std::copy(row.begin(), row.end(), w.begin() + r * s.cols);
      }
      const size_t size = dtype_size(type);
      std::vector<uint8_t> bytes(w.size() * size + 1);
      const size_t offset = type == dtype::f32 ? 0 : 1; // odd start for 16-bit
      for (size_t i = 0; i < w.size(); ++i) {
        uint32_t bits = type == dtype::f32   ? 0
                        : type == dtype::f16 ? f32_to_f16(w[i])
                                             : f32_to_bf16(w[i]);
        if (type == dtype::f32)
          std::memcpy(&bits, &w[i], 4);
        std::memcpy(bytes.data() + offset + i * size, &bits, size);
      }
      std::vector<float> wide(w.size());
      convert_to_f32(type, bytes.data() + offset, w.size(), wide.data());
      std::vector<int8_t> want_q(w.size());
      std::vector<float> want_s(s.rows);
      cpu::quantize_int8_rows(wide.data(), s.rows, s.cols, want_q.data(),
                              want_s.data());
      auto d_src = upload(bytes);
      auto d_q = poisoned(w.size());
      auto d_s = poisoned(4 * s.rows);
      cuda::quantize_int8_rows(type, d_src.get<uint8_t>() + offset, s.rows,
                               s.cols, d_q.get<int8_t>(), d_s.get<float>(),
                               nullptr);
      CAF_CHECK(download<int8_t>(d_q, w.size()) == want_q);
      auto got_s = download<float>(d_s, s.rows);
      CAF_CHECK_EQUAL(std::memcmp(got_s.data(), want_s.data(), 4 * s.rows), 0);
    }
}

namespace {

struct attention_case {
  int64_t heads, kv_heads, head_dim, page_size, window;
  /// Context of each sequence after the step.
  std::vector<int64_t> lengths;
  /// Rows of sequence 0 (a prefill chunk: its last `chunk` positions); the
  /// others have one decode row each.
  int64_t chunk;
  /// max_keys beyond the longest context.
  int64_t extra_keys;
  /// Appends a padding row (position -1), which must come out as zeros.
  bool padding_row = false;
};

/// Runs one batch on both backends; returns the worst row's relative error.
/// With `pairs` (the precise activations), K and V are float32 values held
/// as bf16 pairs, the CPU attends over those values unrounded, and the
/// output compared is its pair's sum.
double attention_error(const attention_case& c, std::mt19937& gen,
                       bool pairs = false) {
  const int64_t hd = c.head_dim, ps = c.page_size;
  const auto n_seqs = static_cast<int64_t>(c.lengths.size());
  // Every sequence's pages drawn from one shuffled pool with spares; the
  // tables in a shuffled order, so that row_table matters.
  int64_t stride = 0, n_pages = 3;
  for (auto len : c.lengths) {
    stride = std::max(stride, (len + ps - 1) / ps + 1);
    n_pages += (len + ps - 1) / ps;
  }
  std::vector<int32_t> pool(n_pages), table_of(n_seqs);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), gen);
  std::iota(table_of.begin(), table_of.end(), 0);
  std::shuffle(table_of.begin(), table_of.end(), gen);
  std::vector<int32_t> tables(n_seqs * stride, -1);
  size_t next = 0;
  for (int64_t s = 0; s < n_seqs; ++s)
    for (int64_t p = 0; p * ps < c.lengths[s]; ++p)
      tables[table_of[s] * stride + p] = pool[next++];
  std::vector<int32_t> positions, row_table;
  auto add = [&](int64_t s, int64_t pos) {
    positions.push_back(static_cast<int32_t>(pos));
    row_table.push_back(table_of[s]);
  };
  for (int64_t s = 1; s <= n_seqs / 2; ++s)
    add(s, c.lengths[s] - 1);
  for (int64_t i = 0; i < c.chunk; ++i)
    add(0, c.lengths[0] - c.chunk + i);
  for (int64_t s = n_seqs / 2 + 1; s < n_seqs; ++s)
    add(s, c.lengths[s] - 1);
  if (c.padding_row)
    add(0, -1);
  const auto n_rows = static_cast<int64_t>(positions.size());
  const int64_t cache_size = n_pages * ps * c.kv_heads * hd;
  auto k = uniform_floats(cache_size, gen);
  auto v = uniform_floats(cache_size, gen);
  auto k_bits = to_bf16_bits(k), v_bits = to_bf16_bits(v);
  std::vector<uint16_t> k_rest(k.size()), v_rest(v.size());
  for (size_t i = 0; i < k.size(); ++i) {
    k_rest[i] = bf16_rest(k[i], k_bits[i]);
    v_rest[i] = bf16_rest(v[i], v_bits[i]);
  }
  if (pairs) {
    // The values the pairs hold (within 2^-17 of k and v).
    for (size_t i = 0; i < k.size(); ++i) {
      k[i] = bf16_to_f32(k_bits[i]) + bf16_to_f32(k_rest[i]);
      v[i] = bf16_to_f32(v_bits[i]) + bf16_to_f32(v_rest[i]);
    }
  } else {
    k = widen(k_bits);
    v = widen(v_bits);
  }
  auto q = uniform_floats(n_rows * c.heads * hd, gen, 2.0f);
  kv_pages cache{k.data(), v.data(), n_pages, ps, c.kv_heads, hd};
  attention_dims dims{c.heads, c.kv_heads, hd, c.window};
  std::vector<float> want(q.size());
  const int64_t row = c.heads * hd;
  for (int64_t r = 0; r < n_rows; ++r)
    if (positions[r] >= 0)
      cpu::paged_attention(q.data() + r * row, &positions[r], 1, cache,
                           tables.data() + row_table[r] * stride, dims,
                           want.data() + r * row);
  const int64_t max_keys = *std::max_element(c.lengths.begin(), c.lengths.end())
                           + c.extra_keys;
  cuda::attention_shape shape{c.heads, c.kv_heads, hd, ps, c.window};
  auto ws_bytes = cuda::paged_attention_workspace_bytes(shape, n_rows,
                                                        max_keys);
  auto d_ws = poisoned(ws_bytes);
  auto d_q = upload(q);
  auto d_k = upload(k_bits);
  auto d_v = upload(v_bits);
  auto d_pos = upload(positions);
  auto d_rt = upload(row_table);
  auto d_tables = upload(tables);
  auto d_out = poisoned(2 * q.size());
  auto d_k_rest = upload(k_rest);
  auto d_v_rest = upload(v_rest);
  auto d_out_rest = poisoned(2 * q.size());
  cuda::split_kv rest;
  if (pairs)
    rest = {d_k_rest.get<__nv_bfloat16>(), d_v_rest.get<__nv_bfloat16>(),
            d_out_rest.get<__nv_bfloat16>()};
  cuda::attention_batch batch{n_rows,
                              d_pos.get<int32_t>(),
                              d_rt.get<int32_t>(),
                              d_tables.get<int32_t>(),
                              stride,
                              max_keys};
  cuda::paged_attention(d_q.get<float>(), d_k.get<__nv_bfloat16>(),
                        d_v.get<__nv_bfloat16>(), rest, batch, shape,
                        d_ws.get(), ws_bytes, d_out.get<__nv_bfloat16>(),
                        nullptr);
  auto got = widen(download<uint16_t>(d_out, q.size()));
  if (pairs) {
    auto got_rest = widen(download<uint16_t>(d_out_rest, q.size()));
    for (size_t i = 0; i < got.size(); ++i)
      got[i] += got_rest[i];
  }
  auto slice = [row](const std::vector<float>& xs, int64_t r) {
    return std::vector<float>(xs.begin() + r * row, xs.begin() + (r + 1) * row);
  };
  double worst = 0;
  for (int64_t r = 0; r < n_rows; ++r) {
    auto got_r = slice(got, r);
    if (positions[r] < 0)
      CAF_CHECK(std::all_of(got_r.begin(), got_r.end(),
                            [](float x) { return x == 0.0f; }));
    else
      worst = std::max(worst, rel_error(got_r, slice(want, r)));
  }
  CAF_MESSAGE((pairs ? "attention over bf16 pairs hd " : "attention hd ")
              << hd << " group " << c.heads / c.kv_heads
                              << " page " << ps << " window " << c.window
                              << " rows " << n_rows << " max_keys " << max_keys
                              << " workspace " << ws_bytes << ": worst row "
                              << sci(worst));
  return worst;
}

} // namespace

CAF_TEST(paged attention matches the CPU twin) {
  if (!gpu_available())
    return;
  std::mt19937 gen{17};
  const attention_case cases[] = {
    // Mixtral's shape; a prefill chunk among decode rows, up to 3000 keys.
    {32, 8, 128, 16, 0, {300, 3000, 1, 37}, 31, 100, true},
    {8, 4, 64, 5, 0, {2999, 64, 129}, 17, 0},
    {4, 4, 32, 1, 0, {2, 1000, 257}, 2, 3},
    {8, 2, 16, 16, 100, {700, 50, 129}, 31, 0},
    // Batch-1 decode, group 8: many splits.
    {16, 2, 128, 16, 0, {2500}, 1, 0},
    // Group 3 (padded to 4), window shorter than max_keys.
    {6, 2, 64, 5, 257, {2000, 10}, 3, 2000},
    // 258 rows: enough blocks without splitting the keys.
    {8, 4, 32, 16, 0, {1500, 7}, 257, 0, true},
    {2, 1, 16, 1, 0, {1, 5}, 1, 2},
  };
  for (const auto& c : cases)
    CAF_CHECK_LESS_OR_EQUAL(attention_error(c, gen), 1e-2);
  // The precise activations: K, V and the output as bf16 pairs, against
  // float32 attention (bf16 alone is 1e-2 away).
  for (const auto& c : cases)
    CAF_CHECK_LESS_OR_EQUAL(attention_error(c, gen, true), 3e-5);
}

#else // VOLT_HAVE_CUDA

CAF_TEST(cuda model ops need a CUDA build) {
  volt::test::report_gpu_skip("volt was built without CUDA");
}

#endif // VOLT_HAVE_CUDA
