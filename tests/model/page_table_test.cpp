#define CAF_SUITE model.page_table

// The paging policy against hand-computed page ids: a fresh pool hands out the
// lowest free page first, so every table below can be worked out on paper.
// Page size 4 throughout.

#include "model/page_table.hpp"

#include <map>
#include <numeric>

#include "base/error.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

using ids = std::vector<int32_t>;
using copies = std::vector<page_copy>;

/// Tokens first, first + 1, ..., first + n - 1.
ids iota(int32_t first, int32_t n) {
  ids result(static_cast<size_t>(n));
  std::iota(result.begin(), result.end(), first);
  return result;
}

ids concat(ids xs, const ids& ys) {
  xs.insert(xs.end(), ys.begin(), ys.end());
  return xs;
}

/// Every page is used, evictable or free, and the cache only holds used or
/// evictable pages.
void check_invariants(const page_table& pt) {
  auto st = pt.stats();
  CAF_CHECK_EQUAL(st.pages_used + st.pages_evictable + st.pages_free,
                  st.pages_total);
  CAF_CHECK_LESS_OR_EQUAL(st.pages_evictable, st.pages_cached);
}

bool same(const page_table_stats& x, const page_table_stats& y) {
  return x.pages_used == y.pages_used && x.pages_shared == y.pages_shared
         && x.pages_cached == y.pages_cached
         && x.pages_evictable == y.pages_evictable
         && x.pages_free == y.pages_free && x.copy_on_write == y.copy_on_write
         && x.prefix_lookups == y.prefix_lookups
         && x.prefix_hits == y.prefix_hits
         && x.prefix_hit_tokens == y.prefix_hit_tokens
         && x.evictions == y.evictions;
}

/// Returns "" if `err` has `code` and a one-line message containing
/// `fragment`, else what is wrong.
std::string mismatch(const caf::error& err, volt_errc code,
                     const std::string& fragment) {
  if (!err)
    return "expected an error, got none";
  if (err != code)
    return "wrong code: " + caf::to_string(err);
  auto msg = describe(err);
  if (msg.find('\n') != std::string::npos
      || msg.find(fragment) == std::string::npos)
    return "message lacks '" + fragment + "': " + msg;
  return {};
}

template <class T>
std::string mismatch(const caf::expected<T>& x, volt_errc code,
                     const std::string& fragment) {
  if (x)
    return "expected an error, got a value";
  return mismatch(x.error(), code, fragment);
}

/// Returns the value of `x`; fails the test on an error.
template <class T>
T get(caf::expected<T> x) {
  if (!x)
    CAF_FAIL(describe(x.error()));
  return std::move(*x);
}

#define CHECK_ERROR(x, code, fragment) \
  CAF_CHECK_EQUAL(mismatch((x), code, fragment), std::string{})

} // namespace

CAF_TEST(accounting after admit fork and release) {
  page_table pt{4, 8};
  auto a = pt.admit(1, iota(1, 6), 10);
  CAF_REQUIRE(a);
  CAF_CHECK_EQUAL(a->block_table, ids({0, 1, 2}));
  CAF_CHECK_EQUAL(a->cached_tokens, 0);
  auto st = pt.stats();
  CAF_CHECK_EQUAL(st.page_size, 4);
  CAF_CHECK_EQUAL(st.pages_total, 8);
  CAF_CHECK_EQUAL(st.pages_used, 3);
  CAF_CHECK_EQUAL(st.pages_shared, 0);
  CAF_CHECK_EQUAL(st.pages_free, 5);
  CAF_REQUIRE(!pt.fork(1, 2));
  CAF_CHECK_EQUAL(pt.block_table(2), ids({0, 1, 2}));
  CAF_CHECK_EQUAL(pt.length(2), pt.length(1));
  CAF_CHECK_EQUAL(pt.refs(0), 2);
  st = pt.stats();
  CAF_CHECK_EQUAL(st.pages_used, 3);
  CAF_CHECK_EQUAL(st.pages_shared, 3);
  CAF_CHECK_EQUAL(get(pt.admit(3, ids{7, 8}, 4)).block_table, ids({3}));
  CAF_CHECK_EQUAL(pt.sequences_by_admission(),
                  std::vector<uint64_t>({1, 2, 3}));
  CAF_CHECK_EQUAL(pt.stats().pages_used, 4);
  CAF_REQUIRE(!pt.release(1));
  st = pt.stats();
  CAF_CHECK_EQUAL(st.pages_used, 4);
  CAF_CHECK_EQUAL(st.pages_shared, 0);
  CAF_CHECK_EQUAL(pt.sequences_by_admission(), std::vector<uint64_t>({2, 3}));
  CAF_REQUIRE(!pt.release(2));
  CAF_CHECK_EQUAL(pt.stats().pages_used, 1);
  CAF_CHECK_EQUAL(pt.stats().pages_free, 7);
  CAF_REQUIRE(!pt.release(3));
  CAF_CHECK_EQUAL(pt.stats().pages_used, 0);
  CAF_CHECK_EQUAL(pt.stats().pages_free, 8);
  CAF_CHECK(pt.sequences_by_admission().empty());
  check_invariants(pt);
}

CAF_TEST(copy on write isolates a forked sequence) {
  page_table pt{4, 8};
  CAF_REQUIRE_EQUAL(get(pt.admit(1, iota(1, 6), 6)).block_table, ids({0, 1}));
  CAF_CHECK_EQUAL(get(pt.prepare_write(1, 0, 6)), copies{});
  CAF_REQUIRE(!pt.commit(1, 6));
  CAF_REQUIRE(!pt.fork(1, 2));
  // Position 6 lies in page 1 (positions 4..7), which holds tokens 4 and 5 of
  // both: the child gets a copy, page 0 stays shared.
  CAF_CHECK_EQUAL(get(pt.prepare_write(2, 6, 7)), copies({{1, 2}}));
  CAF_CHECK_EQUAL(pt.block_table(2), ids({0, 2}));
  CAF_CHECK_EQUAL(pt.block_table(1), ids({0, 1}));
  CAF_CHECK_EQUAL(pt.refs(0), 2);
  CAF_CHECK_EQUAL(pt.refs(1), 1);
  CAF_CHECK_EQUAL(pt.refs(2), 1);
  // The parent is now the only owner of page 1: it writes in place.
  CAF_CHECK_EQUAL(get(pt.prepare_write(1, 6, 7)), copies{});
  CAF_CHECK_EQUAL(pt.block_table(1), ids({0, 1}));
  auto st = pt.stats();
  CAF_CHECK_EQUAL(st.copy_on_write, 1u);
  CAF_CHECK_EQUAL(st.pages_shared, 1);
  CAF_CHECK_EQUAL(st.pages_used, 3);
  // Growing past the table allocates without copying.
  CAF_REQUIRE(!pt.commit(2, 7, ids{70}));
  CAF_CHECK_EQUAL(get(pt.prepare_write(2, 7, 9)), copies{});
  CAF_CHECK_EQUAL(pt.block_table(2), ids({0, 2, 3}));
  CAF_CHECK_EQUAL(pt.stats().copy_on_write, 1u);
  check_invariants(pt);
}

CAF_TEST(a shared page without data is replaced but not copied) {
  page_table pt{4, 8};
  CAF_REQUIRE_EQUAL(get(pt.admit(1, ids{5, 6}, 8)).block_table, ids({0, 1}));
  CAF_REQUIRE(!pt.commit(1, 2));
  CAF_REQUIRE(!pt.fork(1, 2));
  // Positions 2..4 touch page 0 (tokens 0 and 1 are there) and page 1 (empty).
  CAF_CHECK_EQUAL(get(pt.prepare_write(2, 2, 5)), copies({{0, 2}}));
  CAF_CHECK_EQUAL(pt.block_table(2), ids({2, 3}));
  CAF_CHECK_EQUAL(pt.block_table(1), ids({0, 1}));
  CAF_CHECK_EQUAL(pt.stats().copy_on_write, 1u);
  CAF_CHECK_EQUAL(pt.stats().pages_shared, 0);
}

CAF_TEST(prefix hits follow the hash chain) {
  page_table pt{4, 16};
  auto a = iota(1, 12); // three full pages
  CAF_REQUIRE_EQUAL(get(pt.admit(1, a, 12)).block_table, ids({0, 1, 2}));
  CAF_REQUIRE(!pt.commit(1, 12));
  CAF_CHECK_EQUAL(pt.stats().pages_cached, 3);
  // Same prompt: at most (12 - 1) / 4 = 2 pages, the last token is computed.
  auto same = pt.admit(2, a, 12);
  CAF_REQUIRE(same);
  CAF_CHECK_EQUAL(same->cached_tokens, 8);
  CAF_CHECK_EQUAL(same->block_table, ids({0, 1, 3}));
  CAF_CHECK_EQUAL(pt.length(2), 8);
  // A different token in page 1 hits only page 0.
  auto b = a;
  b[5] = 99;
  auto other = pt.admit(3, b, 12);
  CAF_REQUIRE(other);
  CAF_CHECK_EQUAL(other->cached_tokens, 4);
  CAF_CHECK_EQUAL(other->block_table, ids({0, 4, 5}));
  // A different first token hits nothing.
  auto c = a;
  c[0] = 0;
  CAF_CHECK_EQUAL(get(pt.admit(4, c, 12)).cached_tokens, 0);
  // A prompt of exactly one cached page reuses nothing (its last token must
  // be computed); one more token reuses the page.
  CAF_CHECK_EQUAL(get(pt.admit(5, iota(1, 4), 4)).cached_tokens, 0);
  CAF_CHECK_EQUAL(get(pt.admit(6, iota(1, 5), 5)).cached_tokens, 4);
  auto st = pt.stats();
  CAF_CHECK_EQUAL(st.prefix_lookups, 6u);
  CAF_CHECK_EQUAL(st.prefix_hits, 3u);
  CAF_CHECK_EQUAL(st.prefix_hit_tokens, 16u);
  CAF_CHECK_EQUAL(pt.refs(0), 4);
  check_invariants(pt);
}

CAF_TEST(withheld pages stay out of the prefix cache) {
  page_table pt{4, 16};
  CAF_REQUIRE(pt.admit(1, iota(1, 6), 12));
  CAF_REQUIRE(!pt.commit(1, 6));
  CAF_CHECK_EQUAL(pt.stats().pages_cached, 1); // page 0, before withhold
  CAF_REQUIRE(!pt.withhold(1));
  CAF_REQUIRE(pt.prepare_write(1, 6, 12));
  CAF_REQUIRE(!pt.commit(1, 12, iota(7, 6)));
  CAF_CHECK_EQUAL(pt.stats().pages_cached, 1);
  CAF_CHECK_EQUAL(get(pt.admit(2, iota(1, 13), 13)).cached_tokens, 4);
  // Forks inherit it.
  CAF_REQUIRE(!pt.fork(1, 3));
  CAF_REQUIRE(pt.prepare_write(3, 12, 16));
  CAF_REQUIRE(!pt.commit(3, 16, iota(13, 4)));
  CAF_CHECK_EQUAL(pt.stats().pages_cached, 1);
  // Admission may skip the cache: no hit, no lookup counted.
  auto lookups = pt.stats().prefix_lookups;
  auto fresh = pt.admit(4, iota(1, 9), 9, false);
  CAF_REQUIRE(fresh);
  CAF_CHECK_EQUAL(fresh->cached_tokens, 0);
  CAF_CHECK_NOT_EQUAL(fresh->block_table[0], 0);
  CAF_CHECK_EQUAL(pt.stats().prefix_lookups, lookups);
  CHECK_ERROR(pt.withhold(99), volt_errc::invalid_request,
              "withhold: unknown sequence 99");
  check_invariants(pt);
}

CAF_TEST(a partial last page is never cached) {
  page_table pt{4, 16};
  CAF_REQUIRE(pt.admit(1, iota(50, 6), 6));
  CAF_REQUIRE(!pt.commit(1, 6));
  CAF_CHECK_EQUAL(pt.stats().pages_cached, 1);
  // Tokens 50..55 then 56..58: page 1 (54..57) was partial, so only page 0.
  CAF_CHECK_EQUAL(get(pt.admit(2, iota(50, 9), 9)).cached_tokens, 4);
  // Generated tokens complete the page: committing them caches it.
  CAF_REQUIRE(pt.prepare_write(1, 6, 8));
  CAF_REQUIRE(!pt.commit(1, 8, ids{56, 57}));
  CAF_CHECK_EQUAL(pt.stats().pages_cached, 2);
  CAF_CHECK_EQUAL(get(pt.admit(3, iota(50, 9), 9)).cached_tokens, 8);
}

CAF_TEST(hash collisions never give false hits) {
  // Every page gets key 0: only the token and parent comparison tells pages
  // apart.
  page_table pt{4, 16, [](uint64_t, const int32_t*, int64_t) -> uint64_t {
                  return 0;
                }};
  CAF_REQUIRE(pt.admit(1, iota(1, 12), 12));
  CAF_REQUIRE(!pt.commit(1, 12));
  CAF_CHECK_EQUAL(pt.stats().pages_cached, 3);
  CAF_CHECK_EQUAL(
    get(pt.admit(2, concat(iota(1, 4), ids{9, 9, 9, 9, 1}), 9)).cached_tokens,
    4);
  // Page 1's tokens, but as a first page: its parent does not match.
  CAF_CHECK_EQUAL(
    get(pt.admit(3, concat(iota(5, 4), iota(1, 5)), 9)).cached_tokens, 0);
  CAF_CHECK_EQUAL(get(pt.admit(4, iota(1, 9), 9)).cached_tokens, 8);
}

CAF_TEST(duplicate pages computed concurrently are cached once) {
  page_table pt{4, 16};
  CAF_REQUIRE(pt.admit(1, iota(1, 9), 9));
  CAF_REQUIRE(pt.admit(2, iota(1, 9), 9)); // before 1 commits: no hit
  CAF_REQUIRE(!pt.commit(1, 9));
  CAF_REQUIRE(!pt.commit(2, 9));
  CAF_CHECK_EQUAL(pt.stats().pages_cached, 2);
  CAF_CHECK_EQUAL(get(pt.admit(3, iota(1, 9), 9)).block_table, ids({0, 1, 6}));
  CAF_REQUIRE(!pt.release(1));
  CAF_REQUIRE(!pt.release(2));
  CAF_REQUIRE(!pt.release(3));
  auto st = pt.stats();
  CAF_CHECK_EQUAL(st.pages_used, 0);
  CAF_CHECK_EQUAL(st.pages_cached, 2);
  CAF_CHECK_EQUAL(st.pages_free, 14);
}

CAF_TEST(unreferenced cached pages are evicted least recently used first) {
  page_table pt{4, 6};
  CAF_REQUIRE(pt.admit(1, iota(1, 8), 8));
  CAF_REQUIRE(!pt.commit(1, 8));
  CAF_REQUIRE(!pt.release(1)); // evictable, ends of chains first: 1, 0
  CAF_REQUIRE_EQUAL(get(pt.admit(2, iota(11, 8), 8)).block_table, ids({2, 3}));
  CAF_REQUIRE(!pt.commit(2, 8));
  CAF_REQUIRE(!pt.release(2)); // evictable: 1, 0, 3, 2
  auto st = pt.stats();
  CAF_CHECK_EQUAL(st.pages_cached, 4);
  CAF_CHECK_EQUAL(st.pages_evictable, 4);
  CAF_CHECK_EQUAL(st.pages_free, 2);
  CAF_CHECK_EQUAL(pt.available_pages(), 6);
  // Free pages go first.
  CAF_CHECK_EQUAL(get(pt.admit(3, iota(21, 5), 5)).block_table, ids({4, 5}));
  CAF_CHECK_EQUAL(pt.stats().evictions, 0u);
  // Then the least recently used: page 1, the end of the first chain.
  CAF_CHECK_EQUAL(get(pt.admit(4, iota(31, 2), 4)).block_table, ids({1}));
  CAF_CHECK_EQUAL(pt.stats().evictions, 1u);
  CAF_CHECK_EQUAL(pt.stats().pages_cached, 3);
  // The first chain now hits page 0 only; referencing it takes it out of the
  // evictable pages, so the two others come from 3 and 2, in that order.
  auto again = pt.admit(5, iota(1, 9), 9);
  CAF_REQUIRE(again);
  CAF_CHECK_EQUAL(again->cached_tokens, 4);
  CAF_CHECK_EQUAL(again->block_table, ids({0, 3, 2}));
  st = pt.stats();
  CAF_CHECK_EQUAL(st.evictions, 3u);
  CAF_CHECK_EQUAL(st.pages_cached, 1);
  CAF_CHECK_EQUAL(st.pages_evictable, 0);
  CAF_CHECK_EQUAL(pt.available_pages(), 0);
  check_invariants(pt);
}

CAF_TEST(evicting a page drops the entries chained below it) {
  page_table pt{4, 5};
  CAF_REQUIRE(pt.admit(1, iota(1, 8), 8));
  CAF_REQUIRE(!pt.commit(1, 8));
  CAF_REQUIRE(!pt.fork(1, 2));
  // The child rewrites position 0: it gets a copy of page 0 and keeps sharing
  // page 1, which stays cached as the child of page 0.
  CAF_CHECK_EQUAL(get(pt.prepare_write(2, 0, 1)), copies({{0, 2}}));
  CAF_CHECK_EQUAL(pt.block_table(2), ids({2, 1}));
  CAF_REQUIRE(!pt.release(1)); // page 0 evictable, page 1 held by 2
  auto st = pt.stats();
  CAF_CHECK_EQUAL(st.pages_cached, 2);
  CAF_CHECK_EQUAL(st.pages_evictable, 1);
  // Three pages: 3 and 4 are free, page 0 is evicted, and page 1's entry goes
  // with it, or a later lookup could chain through a page that is gone.
  CAF_CHECK_EQUAL(get(pt.admit(3, ids{40, 41, 42}, 12)).block_table,
                  ids({3, 4, 0}));
  st = pt.stats();
  CAF_CHECK_EQUAL(st.evictions, 2u);
  CAF_CHECK_EQUAL(st.pages_cached, 0);
  CAF_REQUIRE(!pt.release(2));
  CAF_REQUIRE(!pt.release(3));
  st = pt.stats();
  CAF_CHECK_EQUAL(st.pages_used, 0);
  CAF_CHECK_EQUAL(st.pages_free, 5);
  // Nothing left to hit.
  CAF_CHECK_EQUAL(get(pt.admit(4, iota(1, 9), 9)).cached_tokens, 0);
  check_invariants(pt);
}

CAF_TEST(a sole owner rewriting a cached page uncaches it) {
  page_table pt{4, 8};
  CAF_REQUIRE(pt.admit(1, iota(1, 8), 8));
  CAF_REQUIRE(!pt.commit(1, 8));
  CAF_CHECK_EQUAL(get(pt.prepare_write(1, 2, 3)), copies{});
  CAF_CHECK_EQUAL(pt.stats().pages_cached, 0);
  CAF_CHECK_EQUAL(pt.stats().copy_on_write, 0u);
}

CAF_TEST(a pool exactly too small versus a full one) {
  page_table pt{4, 4};
  // 17 tokens need 5 pages: never fits.
  CHECK_ERROR(pt.admit(1, iota(1, 3), 17), volt_errc::invalid_request,
              "17 tokens need 5 KV pages of 4 tokens, the pool has only 4");
  CAF_CHECK(!pt.contains(1));
  CHECK_ERROR(pt.admit(1, iota(1, 17), 4), volt_errc::invalid_request,
              "17 tokens need 5 KV pages");
  CHECK_ERROR(pt.admit(1, iota(1, 3), INT64_MAX), volt_errc::invalid_request,
              "the pool has only 4 pages");
  // 16 tokens fit exactly.
  CAF_REQUIRE_EQUAL(get(pt.admit(1, iota(1, 3), 16)).block_table,
                    ids({0, 1, 2, 3}));
  auto before = pt.stats();
  CHECK_ERROR(pt.admit(2, iota(1, 3), 4), volt_errc::out_of_pages,
              "needs 1 more KV pages, 0 are available");
  CAF_CHECK(!pt.contains(2));
  CAF_CHECK(same(pt.stats(), before));
  CHECK_ERROR(pt.prepare_write(1, 0, 17), volt_errc::invalid_request,
              "the pool has only 4 pages");
  CHECK_ERROR(pt.prepare_write(1, 0, INT64_MAX), volt_errc::invalid_request,
              "the pool has only 4 pages");
  CAF_CHECK_EQUAL(pt.block_table(1), ids({0, 1, 2, 3}));
  CAF_REQUIRE(!pt.release(1));
  CAF_CHECK(pt.admit(2, iota(1, 3), 4));
}

CAF_TEST(failed writes leave the state unchanged) {
  page_table pt{4, 4};
  CAF_REQUIRE(pt.admit(1, iota(1, 3), 8));
  CAF_REQUIRE(!pt.commit(1, 3));
  CAF_REQUIRE(!pt.fork(1, 2));
  CAF_REQUIRE(pt.admit(3, ids{9}, 8));
  auto before = pt.stats();
  // Growth needs a page, none is free.
  CHECK_ERROR(pt.prepare_write(1, 3, 9), volt_errc::out_of_pages,
              "needs 3 more KV pages");
  // Copy-on-write needs a page too.
  CHECK_ERROR(pt.prepare_write(2, 3, 4), volt_errc::out_of_pages,
              "needs 1 more KV pages");
  CAF_CHECK(same(pt.stats(), before));
  CAF_CHECK_EQUAL(pt.block_table(1), ids({0, 1}));
  CAF_CHECK_EQUAL(pt.block_table(2), ids({0, 1}));
  // Preempting the most recent admission makes room.
  // A local: CAF_CHECK_EQUAL binds a reference to its argument, and back() of
  // the temporary vector would dangle (heap-use-after-free under ASan).
  auto order = pt.sequences_by_admission();
  CAF_CHECK_EQUAL(order.back(), 3u);
  CAF_REQUIRE(!pt.release(3));
  CAF_CHECK_EQUAL(get(pt.prepare_write(2, 3, 4)), copies({{0, 2}}));
}

CAF_TEST(bad calls are errors) {
  page_table pt{4, 8};
  CAF_REQUIRE(pt.admit(1, iota(1, 6), 8));
  CHECK_ERROR(pt.admit(1, ids{1}, 1), volt_errc::invalid_request,
              "sequence 1 is already admitted");
  CHECK_ERROR(pt.admit(2, ids{}, 1), volt_errc::invalid_request,
              "empty prompt");
  CHECK_ERROR(pt.admit(2, ids{1, -3}, 4), volt_errc::invalid_request,
              "prompt token 1 is -3");
  CHECK_ERROR(pt.admit(2, ids{1}, -1), volt_errc::invalid_request,
              "reserve_tokens is -1");
  CHECK_ERROR(pt.prepare_write(7, 0, 1), volt_errc::invalid_request,
              "unknown sequence 7");
  CHECK_ERROR(pt.prepare_write(1, 3, 3), volt_errc::invalid_request,
              "out of order");
  CHECK_ERROR(pt.prepare_write(1, -1, 3), volt_errc::invalid_request,
              "out of order");
  CHECK_ERROR(pt.prepare_write(1, 1, 2), volt_errc::invalid_request,
              "computed only 0 tokens");
  CAF_REQUIRE(!pt.commit(1, 6));
  CHECK_ERROR(pt.commit(1, 5), volt_errc::invalid_request,
              "fewer than the 6 already computed");
  CHECK_ERROR(pt.commit(1, 8), volt_errc::invalid_request,
              "only 6 token ids are known");
  CHECK_ERROR(pt.commit(1, 9, ids{1, 2, 3}), volt_errc::invalid_request,
              "its pages hold only 8");
  CHECK_ERROR(pt.commit(1, 7, ids{-1}), volt_errc::invalid_request,
              "appended token 0 is -1");
  CHECK_ERROR(pt.commit(9, 1), volt_errc::invalid_request,
              "unknown sequence 9");
  CHECK_ERROR(pt.fork(9, 2), volt_errc::invalid_request, "unknown sequence 9");
  CHECK_ERROR(pt.fork(1, 1), volt_errc::invalid_request,
              "sequence 1 already exists");
  CHECK_ERROR(pt.release(9), volt_errc::invalid_request, "unknown sequence 9");
  // None of it changed anything.
  CAF_CHECK_EQUAL(pt.length(1), 6);
  CAF_CHECK_EQUAL(pt.stats().pages_used, 2);
  CAF_CHECK_EQUAL(pt.sequences_by_admission(), std::vector<uint64_t>({1}));
}

CAF_TEST(release returns everything) {
  page_table pt{4, 12};
  // A mix of prefix hits, forks, copies, growth and evictions.
  for (uint64_t round = 0; round < 3; ++round) {
    for (uint64_t i = 0; i < 3; ++i) {
      auto seq = round * 10 + i;
      auto prompt = concat(iota(1, 8), ids{static_cast<int32_t>(i + round)});
      auto admitted = pt.admit(seq, prompt, 10);
      CAF_REQUIRE(admitted);
      auto from = admitted->cached_tokens;
      CAF_REQUIRE(pt.prepare_write(seq, from, 9));
      CAF_REQUIRE(!pt.commit(seq, 9));
      if (i == 0) {
        CAF_REQUIRE(!pt.fork(seq, seq + 100));
        CAF_REQUIRE(pt.prepare_write(seq + 100, 9, 10));
        CAF_REQUIRE(!pt.commit(seq + 100, 10, ids{5}));
      }
      check_invariants(pt);
    }
    for (auto seq : pt.sequences_by_admission())
      CAF_REQUIRE(!pt.release(seq));
  }
  auto st = pt.stats();
  CAF_CHECK_EQUAL(st.pages_used, 0);
  CAF_CHECK_EQUAL(st.pages_shared, 0);
  CAF_CHECK_EQUAL(st.pages_free + st.pages_cached, st.pages_total);
  CAF_CHECK_EQUAL(st.pages_evictable, st.pages_cached);
  CAF_CHECK_GREATER(st.prefix_hits, 0u);
  CAF_CHECK_GREATER(st.copy_on_write, 0u);
  CAF_CHECK(pt.sequences_by_admission().empty());
}

CAF_TEST(pool size from the configuration) {
  // num_pages wins over memory_mib; memory_mib over the context default.
  CAF_CHECK_EQUAL(get(kv_pool_pages(10, 5, 1 << 18, 100, 16)), 10);
  CAF_CHECK_EQUAL(get(kv_pool_pages(0, 1, 1 << 18, 100, 16)), 4);
  CAF_CHECK_EQUAL(get(kv_pool_pages(0, 0, 1 << 18, 100, 16)), 7);
  CHECK_ERROR(kv_pool_pages(0, 1, 3 << 20, 100, 16), volt_errc::invalid_config,
              "memory_mib: 1 MiB holds no KV page");
}

CAF_TEST(random operations keep the tokens of every sequence intact) {
  // Simulates the engine on top of the policy: storage holds one token id per
  // slot, copies are performed as returned, and every sequence must read back
  // exactly its own tokens after every operation (copy-on-write, prefix hits
  // and eviction included); reference counts must match the tables.
  constexpr int64_t ps = 4;
  constexpr int64_t n_pages = 24;
  page_table pt{ps, n_pages};
  std::vector<ids> storage(n_pages, ids(ps, -1));
  std::map<uint64_t, ids> tokens; // what each live sequence has computed
  uint64_t rng = 12345;
  auto next = [&](uint64_t n) {
  rng += 0x9e3779b97f4a7c15ULL;
  auto z = rng;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return (z ^ (z >> 31)) % n;
  };
  auto slot = [&](uint64_t seq, int64_t pos) -> int32_t& {
  auto page = pt.block_table(seq)[static_cast<size_t>(pos / ps)];
  return storage[static_cast<size_t>(page)][static_cast<size_t>(pos % ps)];
  };
  // Writes `xs` at positions [from, from + n) the way the engine would.
  auto compute = [&](uint64_t seq, int64_t from, const ids& all) {
  auto to = static_cast<int64_t>(all.size());
  auto plan = pt.prepare_write(seq, from, to);
  if (!plan)
    return plan.error();
  for (const auto& c : *plan)
    storage[static_cast<size_t>(c.dst)] = storage[static_cast<size_t>(c.src)];
  for (auto pos = from; pos < to; ++pos)
    slot(seq, pos) = all[static_cast<size_t>(pos)];
  ids appended(all.begin() + static_cast<ptrdiff_t>(tokens[seq].size()),
               all.end());
  tokens[seq] = all;
  return pt.commit(seq, to, appended);
  };
  const ids bases[] = {iota(1, 9), iota(1, 5), iota(40, 7)};
  uint64_t next_id = 0;
  int64_t hits = 0;
  for (int step = 0; step < 3000; ++step) {
  auto op = next(10);
  if (op < 3 || tokens.empty()) { // admit
    auto prompt = bases[next(3)];
    prompt.resize(1 + next(prompt.size()));
    for (auto n = next(4); n > 0; --n)
      prompt.push_back(static_cast<int32_t>(100 + next(3)));
    auto seq = next_id++;
    auto admitted = pt.admit(seq, prompt,
                             static_cast<int64_t>(prompt.size() + next(6)));
    if (!admitted) {
      CAF_REQUIRE(admitted.error() == volt_errc::out_of_pages);
      continue;
    }
    hits += admitted->cached_tokens;
    ids cached(prompt.begin(), prompt.begin() + admitted->cached_tokens);
    tokens[seq] = cached;
    for (int64_t pos = 0; pos < admitted->cached_tokens; ++pos)
      CAF_REQUIRE_EQUAL(slot(seq, pos), prompt[static_cast<size_t>(pos)]);
    if (auto err = compute(seq, admitted->cached_tokens, prompt)) {
      CAF_REQUIRE(err == volt_errc::out_of_pages);
      tokens.erase(seq);
      CAF_REQUIRE(!pt.release(seq));
    }
  } else {
    auto it = tokens.begin();
    std::advance(it, static_cast<ptrdiff_t>(next(tokens.size())));
    auto seq = it->first;
    if (op < 7) { // decode one token
      auto all = it->second;
      all.push_back(static_cast<int32_t>(100 + next(3)));
      auto err = compute(seq, static_cast<int64_t>(all.size()) - 1, all);
      if (err) {
        CAF_REQUIRE(err == volt_errc::out_of_pages);
        auto newest = pt.sequences_by_admission().back();
        tokens.erase(newest);
        CAF_REQUIRE(!pt.release(newest));
      }
    } else if (op < 8) { // fork
      auto child = next_id++;
      CAF_REQUIRE(!pt.fork(seq, child));
      tokens[child] = tokens[seq];
    } else { // release
      tokens.erase(seq);
      CAF_REQUIRE(!pt.release(seq));
    }
  }
  // Every sequence reads back its own tokens; references match the tables.
  std::vector<int32_t> refs(n_pages);
  for (const auto& [seq, xs] : tokens) {
    CAF_REQUIRE_EQUAL(pt.length(seq), static_cast<int64_t>(xs.size()));
    for (size_t pos = 0; pos < xs.size(); ++pos)
      CAF_REQUIRE_EQUAL(slot(seq, static_cast<int64_t>(pos)), xs[pos]);
    for (auto page : pt.block_table(seq))
      refs[static_cast<size_t>(page)] += 1;
  }
  for (int32_t page = 0; page < n_pages; ++page)
    CAF_REQUIRE_EQUAL(pt.refs(page), refs[static_cast<size_t>(page)]);
  check_invariants(pt);
  }
  for (const auto& entry : tokens)
    CAF_REQUIRE(!pt.release(entry.first));
  auto st = pt.stats();
  CAF_CHECK_EQUAL(st.pages_used, 0);
  CAF_CHECK_EQUAL(st.pages_free + st.pages_cached, st.pages_total);
  // The run exercised what it is meant to.
  CAF_CHECK_GREATER(hits, 0);
  CAF_CHECK_GREATER(st.copy_on_write, 0u);
  CAF_CHECK_GREATER(st.evictions, 0u);
}
