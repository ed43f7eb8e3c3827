#define CAF_SUITE gpu.cuda_prefill_attention

// The tensor-core prefill attention and the SIMT kernel's row subset against
// cpu::paged_attention, on steps that mix prefill chunks (from position 0,
// after a cached prefix, of 1 to 300 rows, partial last tiles) with decode
// rows of other sequences, every sequence's pages drawn from one shuffled
// pool and its table at a shuffled index, the tiles in a shuffled order;
// head_dim 16 to 128, groups 1 to 8 (and 3), pages of 1, 5, 7 and 16 slots,
// sliding windows. Outputs start as 0xff bytes (NaN as bf16): rows outside
// the tiles (or outside the listed rows) must keep every bit, the others must
// be fully written. Bounds, per row over all its heads, ‖got − want‖/‖want‖:
// - prefill_attention against the CPU twin on the same bf16 K/V and q
//   rounded to bf16 (as the kernel stages it; P is rounded to bf16 before
//   P·V): ≤ 1e-2, and against the SIMT kernel on f32 q: ≤ 1e-2;
// - paged_attention with attention_batch::rows against the CPU twin on f32
//   q: ≤ 1e-2, with one and with several key splits.
// Padding rows (negative positions) inside a tile come out as zeros. Without
// a GPU (or a CUDA build) every case prints VOLT_GPU_SKIPPED and ctest
// reports the suite as skipped.

#include "tests/gpu/gpu_test_util.hpp"
#include "tests/test_dsl.hpp"

#ifdef VOLT_HAVE_CUDA

#  include <algorithm>
#  include <functional>
#  include <numeric>
#  include <utility>

#  include "gpu/cpu/cpu_ops.hpp"
#  include "gpu/cuda/attention.cuh"
#  include "gpu/cuda/prefill_attention.cuh"
#  include "tests/gpu/cuda_test_util.hpp"

using namespace volt;
using namespace volt::test;
using cuda::device_buffer;

namespace {

struct prefill_case {
  int64_t heads, kv_heads, head_dim, page_size, window;
  /// Tiled chunks: {tokens already cached, rows of the chunk}.
  std::vector<std::pair<int64_t, int64_t>> chunks;
  /// Decode rows of sequences of their own, never tiled.
  int64_t decodes;
  /// Adds a tile of two padding rows (position -1) and an empty tile.
  bool padding = false;
};

/// One step's rows, pages and tiles, on the host.
struct step {
  int64_t stride = 0;
  int64_t n_pages = 3; // spares no table points to
  int64_t max_keys = 0;
  std::vector<int32_t> tables, positions, row_table, tile_first, tile_rows;
  std::vector<char> tiled; // per row
  std::vector<float> k, v, q; // k and v hold bf16 values
};

step make_step(const prefill_case& c, std::mt19937& gen) {
  struct sequence {
    int64_t cached, rows;
    bool tiled;
  };
  std::vector<sequence> seqs;
  for (auto [cached, rows] : c.chunks)
    seqs.push_back({cached, rows, true});
  std::uniform_int_distribution<int64_t> context{1, 600};
  for (int64_t i = 0; i < c.decodes; ++i)
    seqs.push_back({context(gen) - 1, 1, false});
  std::shuffle(seqs.begin(), seqs.end(), gen);
  const int64_t ps = c.page_size;
  const auto n_seqs = static_cast<int64_t>(seqs.size());
  step s;
  for (const auto& sq : seqs) {
    const int64_t pages = (sq.cached + sq.rows + ps - 1) / ps;
    s.stride = std::max(s.stride, pages + 1);
    s.n_pages += pages;
    s.max_keys = std::max(s.max_keys, sq.cached + sq.rows);
  }
  std::vector<int32_t> pool(s.n_pages), table_of(n_seqs);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), gen);
  std::iota(table_of.begin(), table_of.end(), 0);
  std::shuffle(table_of.begin(), table_of.end(), gen);
  s.tables.assign(n_seqs * s.stride, -1);
  size_t next = 0;
  for (int64_t i = 0; i < n_seqs; ++i)
    for (int64_t p = 0; p * ps < seqs[i].cached + seqs[i].rows; ++p)
      s.tables[table_of[i] * s.stride + p] = pool[next++];
  std::vector<std::pair<int32_t, int32_t>> tiles;
  auto add_row = [&](int64_t pos, int32_t table, bool tiled) {
    s.positions.push_back(static_cast<int32_t>(pos));
    s.row_table.push_back(table);
    s.tiled.push_back(tiled);
  };
  for (int64_t i = 0; i < n_seqs; ++i) {
    const auto first = static_cast<int64_t>(s.positions.size());
    for (int64_t r = 0; r < seqs[i].rows; ++r)
      add_row(seqs[i].cached + r, table_of[i], seqs[i].tiled);
    if (seqs[i].tiled)
      for (int64_t r = 0; r < seqs[i].rows; r += cuda::prefill_tile_rows)
        tiles.emplace_back(static_cast<int32_t>(first + r),
                           static_cast<int32_t>(std::min(
                             cuda::prefill_tile_rows, seqs[i].rows - r)));
  }
  if (c.padding) {
    tiles.emplace_back(static_cast<int32_t>(s.positions.size()), 2);
    tiles.emplace_back(0, 0);
    add_row(-1, table_of[0], true);
    add_row(-1, table_of[0], true);
  }
  std::shuffle(tiles.begin(), tiles.end(), gen);
  for (auto [first, rows] : tiles) {
    s.tile_first.push_back(first);
    s.tile_rows.push_back(rows);
  }
  const int64_t cache_size = s.n_pages * ps * c.kv_heads * c.head_dim;
  s.k = round_bf16(uniform_floats(cache_size, gen));
  s.v = round_bf16(uniform_floats(cache_size, gen));
  s.q = uniform_floats(s.positions.size() * c.heads * c.head_dim, gen, 2.0f);
  return s;
}

/// cpu::paged_attention of the rows `take` accepts (with q as given); the
/// other rows stay 0.
std::vector<float> reference(step& s, const prefill_case& c,
                             const std::vector<float>& q,
                             const std::function<bool(int64_t)>& take) {
  const int64_t row = c.heads * c.head_dim;
  kv_pages cache{s.k.data(),  s.v.data(), s.n_pages,
                 c.page_size, c.kv_heads, c.head_dim};
  attention_dims dims{c.heads, c.kv_heads, c.head_dim, c.window};
  std::vector<float> want(q.size(), 0.0f);
  for (int64_t r = 0; r < static_cast<int64_t>(s.positions.size()); ++r)
    if (s.positions[r] >= 0 && take(r))
      cpu::paged_attention(q.data() + r * row, &s.positions[r], 1, cache,
                           s.tables.data() + s.row_table[r] * s.stride, dims,
                           want.data() + r * row);
  return want;
}

/// The step on the device.
struct device_step {
  device_buffer q, k, v, positions, row_table, tables, tile_first, tile_rows;
  cuda::attention_batch batch;

  explicit device_step(const step& s)
    : q(upload(s.q)), k(upload(to_bf16_bits(s.k))),
      v(upload(to_bf16_bits(s.v))), positions(upload(s.positions)),
      row_table(upload(s.row_table)), tables(upload(s.tables)),
      tile_first(upload(s.tile_first)), tile_rows(upload(s.tile_rows)) {
    batch.n_rows = static_cast<int64_t>(s.positions.size());
    batch.positions = positions.get<int32_t>();
    batch.row_table = row_table.get<int32_t>();
    batch.block_tables = tables.get<int32_t>();
    batch.table_stride = s.stride;
    batch.max_keys = s.max_keys;
  }

  /// paged_attention into `out` of `rows` (all rows when empty).
  void simt(const cuda::attention_shape& shape,
            const std::vector<int32_t>& rows, device_buffer& out) {
    auto b = batch;
    device_buffer d_rows;
    if (!rows.empty()) {
      d_rows = upload(rows);
      b.rows = d_rows.get<int32_t>();
      b.n_rows = static_cast<int64_t>(rows.size());
    }
    auto ws_bytes = cuda::paged_attention_workspace_bytes(shape, b.n_rows,
                                                          b.max_keys);
    auto ws = poisoned(ws_bytes);
    cuda::paged_attention(q.get<float>(), k.get<__nv_bfloat16>(),
                          v.get<__nv_bfloat16>(), cuda::split_kv{}, b, shape,
                          ws.get(), ws_bytes,
                          out.get<__nv_bfloat16>(), nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
  }
};

/// Row r of a [rows, width] bf16 output, widened.
std::vector<float> row_of(const std::vector<uint16_t>& bits, int64_t width,
                          int64_t r) {
  std::vector<float> out(static_cast<size_t>(width));
  std::transform(bits.begin() + r * width, bits.begin() + (r + 1) * width,
                 out.begin(), bf16_to_f32);
  return out;
}

std::vector<float> row_of_f32(const std::vector<float>& xs, int64_t width,
                              int64_t r) {
  return std::vector<float>(xs.begin() + r * width,
                            xs.begin() + (r + 1) * width);
}

bool row_poisoned(const std::vector<uint16_t>& bits, int64_t width, int64_t r) {
  return std::all_of(bits.begin() + r * width, bits.begin() + (r + 1) * width,
                     [](uint16_t b) { return b == 0xffff; });
}

/// Runs prefill_attention on the tiles, then paged_attention on the other
/// rows into the same output, then paged_attention on every row; checks the
/// untouched rows and the three bounds, returns the tiled rows' worst error
/// against the CPU.
double prefill_error(const prefill_case& c, std::mt19937& gen) {
  auto s = make_step(c, gen);
  const auto n_rows = static_cast<int64_t>(s.positions.size());
  const int64_t width = c.heads * c.head_dim;
  cuda::attention_shape shape{c.heads, c.kv_heads, c.head_dim, c.page_size,
                              c.window};
  CAF_REQUIRE(cuda::prefill_attention_supported(shape));
  device_step d(s);
  auto d_out = poisoned(2 * s.q.size());
  cuda::prefill_attention(d.q.get<float>(), d.k.get<__nv_bfloat16>(),
                          d.v.get<__nv_bfloat16>(), d.batch,
                          d.tile_first.get<int32_t>(),
                          d.tile_rows.get<int32_t>(),
                          static_cast<int64_t>(s.tile_first.size()), shape,
                          d_out.get<__nv_bfloat16>(), nullptr);
  auto tiled_bits = download<uint16_t>(d_out, s.q.size());
  auto want = reference(s, c, round_bf16(s.q),
                        [&](int64_t r) { return s.tiled[r] != 0; });
  double worst = 0;
  bool untouched = true;
  bool padding_zero = true;
  std::vector<int32_t> rest;
  for (int64_t r = 0; r < n_rows; ++r) {
    if (!s.tiled[r]) {
      untouched = untouched && row_poisoned(tiled_bits, width, r);
      rest.push_back(static_cast<int32_t>(r));
      continue;
    }
    auto got = row_of(tiled_bits, width, r);
    if (s.positions[r] < 0)
      padding_zero = padding_zero
                     && std::all_of(got.begin(), got.end(),
                                    [](float x) { return x == 0.0f; });
    else
      worst = std::max(worst, rel_error(got, row_of_f32(want, width, r)));
  }
  CAF_CHECK(untouched);
  CAF_CHECK(padding_zero);

  // The other rows through the SIMT kernel's subset, into the same output.
  double rest_worst = 0;
  bool tiled_kept = true;
  if (!rest.empty()) {
    std::shuffle(rest.begin(), rest.end(), gen);
    d.simt(shape, rest, d_out);
    auto all_bits = download<uint16_t>(d_out, s.q.size());
    auto want_f32 = reference(s, c, s.q,
                              [&](int64_t r) { return s.tiled[r] == 0; });
    for (int64_t r = 0; r < n_rows; ++r)
      if (s.tiled[r])
        tiled_kept = tiled_kept
                     && std::equal(all_bits.begin() + r * width,
                                   all_bits.begin() + (r + 1) * width,
                                   tiled_bits.begin() + r * width);
      else
        rest_worst = std::max(rest_worst,
                              rel_error(row_of(all_bits, width, r),
                                        row_of_f32(want_f32, width, r)));
  }
  CAF_CHECK(tiled_kept);

  // Against the SIMT kernel on every row.
  auto d_simt = poisoned(2 * s.q.size());
  d.simt(shape, {}, d_simt);
  auto simt_bits = download<uint16_t>(d_simt, s.q.size());
  double vs_simt = 0;
  for (int64_t r = 0; r < n_rows; ++r)
    if (s.tiled[r] && s.positions[r] >= 0)
      vs_simt = std::max(vs_simt, rel_error(row_of(tiled_bits, width, r),
                                            row_of(simt_bits, width, r)));
  CAF_MESSAGE("prefill hd "
              << c.head_dim << " group " << c.heads / c.kv_heads << " page "
              << c.page_size << " window " << c.window << " rows " << n_rows
              << " tiles " << s.tile_first.size() << ": worst row " << worst
              << ", vs SIMT " << vs_simt << "; SIMT subset of " << rest.size()
              << " rows " << rest_worst);
  CAF_CHECK_LESS_OR_EQUAL(vs_simt, 1e-2);
  CAF_CHECK_LESS_OR_EQUAL(rest_worst, 1e-2);
  return worst;
}

} // namespace

CAF_TEST(prefill attention matches the CPU twin and the SIMT kernel) {
  if (!gpu_available())
    return;
  std::mt19937 gen{23};
  const prefill_case cases[] = {
    // Mixtral's shape: a chunk from position 0, one after a cached prefix,
    // a one-row chunk, decode rows between them.
    {32, 8, 128, 16, 0, {{0, 300}, {700, 129}, {37, 1}}, 2},
    {16, 2, 128, 1, 0, {{0, 65}, {250, 40}}, 1},
    {8, 8, 128, 5, 100, {{0, 300}, {170, 90}}, 2},
    {4, 2, 128, 16, 0, {{2000, 64}, {0, 128}}, 1},
    {8, 4, 64, 5, 0, {{0, 64}, {5, 200}, {130, 63}}, 1},
    {16, 2, 64, 16, 0, {{1000, 130}, {0, 7}}, 3},
    // Exact tiles, a window shorter than a tile, padding and empty tiles.
    {4, 1, 64, 1, 33, {{64, 64}, {3, 128}}, 0, true},
    {6, 6, 64, 5, 0, {{0, 1}, {300, 257}}, 1},
    // Group 3, a window longer than a tile.
    {6, 2, 64, 7, 257, {{0, 300}, {40, 2}}, 1},
    {4, 2, 32, 16, 0, {{0, 100}, {20, 20}}, 1},
    // The tiny test model's shape.
    {4, 2, 16, 5, 0, {{0, 129}, {60, 3}}, 1},
  };
  for (const auto& c : cases)
    CAF_CHECK_LESS_OR_EQUAL(prefill_error(c, gen), 1e-2);
}

CAF_TEST(paged attention computes only the listed rows) {
  if (!gpu_available())
    return;
  std::mt19937 gen{29};
  // Few listed rows over long contexts (several key splits, merged into the
  // listed rows), then 257 listed rows over short ones (one split).
  const prefill_case cases[] = {
    {32, 8, 128, 16, 0, {{2500, 3}}, 6},
    {8, 4, 32, 5, 0, {{0, 300}, {20, 200}}, 20},
  };
  for (const auto& c : cases) {
    auto s = make_step(c, gen);
    const auto n_rows = static_cast<int64_t>(s.positions.size());
    const int64_t width = c.heads * c.head_dim;
    std::vector<int32_t> rows(n_rows);
    std::iota(rows.begin(), rows.end(), 0);
    std::shuffle(rows.begin(), rows.end(), gen);
    rows.resize(n_rows > 100 ? 257 : n_rows / 2 + 1);
    std::vector<char> listed(n_rows, 0);
    for (auto r : rows)
      listed[r] = 1;
    cuda::attention_shape shape{c.heads, c.kv_heads, c.head_dim, c.page_size,
                                c.window};
    device_step d(s);
    auto d_out = poisoned(2 * s.q.size());
    d.simt(shape, rows, d_out);
    auto bits = download<uint16_t>(d_out, s.q.size());
    auto want = reference(s, c, s.q, [&](int64_t r) { return listed[r]; });
    double worst = 0;
    bool untouched = true;
    for (int64_t r = 0; r < n_rows; ++r)
      if (listed[r])
        worst = std::max(worst, rel_error(row_of(bits, width, r),
                                          row_of_f32(want, width, r)));
      else
        untouched = untouched && row_poisoned(bits, width, r);
    CAF_MESSAGE("subset hd "
                << c.head_dim << ": " << rows.size() << " of " << n_rows
                << " rows, workspace "
                << cuda::paged_attention_workspace_bytes(
                     shape, static_cast<int64_t>(rows.size()), s.max_keys)
                << " bytes: worst row " << worst);
    CAF_CHECK(untouched);
    CAF_CHECK_LESS_OR_EQUAL(worst, 1e-2);
  }
}

#else // VOLT_HAVE_CUDA

CAF_TEST(cuda prefill attention needs a CUDA build) {
  volt::test::report_gpu_skip("volt was built without CUDA");
}

#endif // VOLT_HAVE_CUDA
