#define CAF_SUITE actors.kv_page_manager

// The KV page manager on CAF's deterministic test scheduler: the page_table
// scenarios end to end through messages, preemption by the caller, and an
// error reply (never a crash) for every malformed message, since a router may
// send them from another node. Page size 4; a fresh pool hands out the lowest
// free page first.

#include "actors/kv_page_manager.hpp"

#include <numeric>

#include "base/error.hpp"
#include "caf/binary_deserializer.hpp"
#include "caf/binary_serializer.hpp"
#include "tests/deterministic_fixture.hpp"

using namespace volt;

namespace {

using ids = std::vector<int32_t>;
using seqs = std::vector<uint64_t>;

ids iota(int32_t first, int32_t n) {
  ids result(static_cast<size_t>(n));
  std::iota(result.begin(), result.end(), first);
  return result;
}

struct fixture : test::deterministic_fixture {
  /// Like ask, but fails the test on an error reply.
  template <class T, class... Ts>
  T get(const kv_page_manager_actor& dest, Ts&&... xs) {
    auto x = ask<T>(dest, std::forward<Ts>(xs)...);
    if (!x)
      CAF_FAIL(describe(x.error()));
    return std::move(*x);
  }

  kv_admission admit(uint64_t seq, ids prompt, int64_t reserve) {
    return get<kv_admission>(kv, kv_admit{seq, std::move(prompt), reserve});
  }

  kv_write_plan write(uint64_t seq, int64_t from, int64_t to) {
    return get<kv_write_plan>(kv, kv_write{seq, from, to});
  }

  int64_t commit(uint64_t seq, int64_t tokens, ids appended = {}) {
    return get<int64_t>(kv, kv_commit{seq, tokens, std::move(appended)});
  }

  int64_t release(uint64_t seq) {
    return get<int64_t>(kv, kv_release_atom_v, seq);
  }

  page_table_stats stats() {
    return get<page_table_stats>(kv, kv_stats_atom_v);
  }

  /// Returns "" if the reply to `xs` is an error with `code` and a one-line
  /// message containing `fragment`, else what is wrong.
  template <class T, class... Ts>
  std::string
  error_reply(volt_errc code, const std::string& fragment, Ts&&... xs) {
    auto x = ask<T>(kv, std::forward<Ts>(xs)...);
    if (x)
      return "expected an error reply, got a value";
    if (x.error() != code)
      return "wrong code: " + caf::to_string(x.error());
    auto msg = describe(x.error());
    if (msg.find('\n') != std::string::npos
        || msg.find(fragment) == std::string::npos)
      return "message lacks '" + fragment + "': " + msg;
    return {};
  }

  void spawn_manager(int64_t page_size, int64_t num_pages) {
    kv = sys.spawn(kv_page_manager, page_size, num_pages);
  }

  kv_page_manager_actor kv;
};

#define CHECK_ERROR_REPLY(T, code, fragment, ...) \
  CAF_CHECK_EQUAL((error_reply<T>(code, fragment, __VA_ARGS__)), std::string{})

} // namespace

CAF_TEST_FIXTURE_SCOPE(kv_page_manager_tests, fixture)

CAF_TEST(accounting after admit fork and release) {
  spawn_manager(4, 8);
  auto a = admit(1, iota(1, 6), 10);
  CAF_CHECK_EQUAL(a.block_table, ids({0, 1, 2}));
  CAF_CHECK_EQUAL(a.cached_tokens, 0);
  auto st = stats();
  CAF_CHECK_EQUAL(st.page_size, 4);
  CAF_CHECK_EQUAL(st.pages_total, 8);
  CAF_CHECK_EQUAL(st.pages_used, 3);
  CAF_CHECK_EQUAL(st.pages_free, 5);
  CAF_CHECK_EQUAL(get<ids>(kv, kv_fork_atom_v, uint64_t{1}, uint64_t{2}),
                  ids({0, 1, 2}));
  st = stats();
  CAF_CHECK_EQUAL(st.pages_used, 3);
  CAF_CHECK_EQUAL(st.pages_shared, 3);
  CAF_CHECK_EQUAL(get<seqs>(kv, kv_order_atom_v), seqs({1, 2}));
  CAF_CHECK_EQUAL(release(1), 3);
  CAF_CHECK_EQUAL(stats().pages_shared, 0);
  CAF_CHECK_EQUAL(get<ids>(kv, kv_table_atom_v, uint64_t{2}), ids({0, 1, 2}));
  CAF_CHECK_EQUAL(release(2), 3);
  st = stats();
  CAF_CHECK_EQUAL(st.pages_used, 0);
  CAF_CHECK_EQUAL(st.pages_free, 8);
  CAF_CHECK(get<seqs>(kv, kv_order_atom_v).empty());
}

CAF_TEST(copy on write isolates a forked sequence) {
  spawn_manager(4, 8);
  admit(1, iota(1, 6), 6);
  CAF_CHECK(write(1, 0, 6).copies.empty());
  CAF_CHECK_EQUAL(commit(1, 6), 6);
  get<ids>(kv, kv_fork_atom_v, uint64_t{1}, uint64_t{2});
  auto child = write(2, 6, 7);
  CAF_CHECK_EQUAL(child.copies, ids({1, 2}));
  CAF_CHECK_EQUAL(child.block_table, ids({0, 2}));
  auto parent = write(1, 6, 7);
  CAF_CHECK(parent.copies.empty());
  CAF_CHECK_EQUAL(parent.block_table, ids({0, 1}));
  auto st = stats();
  CAF_CHECK_EQUAL(st.copy_on_write, 1u);
  CAF_CHECK_EQUAL(st.pages_shared, 1);
}

CAF_TEST(prefix hits and misses) {
  spawn_manager(4, 16);
  auto a = iota(1, 12);
  admit(1, a, 12);
  write(1, 0, 12);
  commit(1, 12);
  auto hit = admit(2, a, 12);
  CAF_CHECK_EQUAL(hit.cached_tokens, 8);
  CAF_CHECK_EQUAL(hit.block_table, ids({0, 1, 3}));
  auto b = a;
  b[5] = 99;
  auto partial = admit(3, b, 12);
  CAF_CHECK_EQUAL(partial.cached_tokens, 4);
  CAF_CHECK_EQUAL(partial.block_table, ids({0, 4, 5}));
  auto c = a;
  c[0] = 77;
  CAF_CHECK_EQUAL(admit(4, c, 12).cached_tokens, 0);
  auto st = stats();
  CAF_CHECK_EQUAL(st.prefix_lookups, 4u);
  CAF_CHECK_EQUAL(st.prefix_hits, 2u);
  CAF_CHECK_EQUAL(st.prefix_hit_tokens, 12u);
  CAF_CHECK_EQUAL(st.pages_cached, 3);
}

CAF_TEST(least recently used cached pages are evicted first) {
  spawn_manager(4, 6);
  admit(1, iota(1, 8), 8);
  commit(1, 8);
  release(1);
  admit(2, iota(11, 8), 8);
  commit(2, 8);
  release(2);
  CAF_CHECK_EQUAL(stats().pages_evictable, 4);
  CAF_CHECK_EQUAL(admit(3, iota(21, 5), 5).block_table, ids({4, 5}));
  CAF_CHECK_EQUAL(admit(4, iota(31, 2), 4).block_table, ids({1}));
  auto again = admit(5, iota(1, 9), 9);
  CAF_CHECK_EQUAL(again.cached_tokens, 4);
  CAF_CHECK_EQUAL(again.block_table, ids({0, 3, 2}));
  CAF_CHECK_EQUAL(stats().evictions, 3u);
}

CAF_TEST(a pool exactly too small versus a full one) {
  spawn_manager(4, 4);
  CHECK_ERROR_REPLY(kv_admission, volt_errc::invalid_request,
                    "17 tokens need 5 KV pages of 4 tokens, the pool has only "
                    "4 pages",
                    kv_admit{1, iota(1, 3), 17});
  CAF_CHECK_EQUAL(admit(1, iota(1, 3), 16).block_table, ids({0, 1, 2, 3}));
  auto before = stats();
  CHECK_ERROR_REPLY(kv_admission, volt_errc::out_of_pages,
                    "needs 1 more KV pages, 0 are available",
                    kv_admit{2, iota(1, 3), 4});
  auto after = stats();
  CAF_CHECK_EQUAL(after.pages_used, before.pages_used);
  CAF_CHECK_EQUAL(after.prefix_lookups, before.prefix_lookups);
  CAF_CHECK_EQUAL(get<seqs>(kv, kv_order_atom_v), seqs({1}));
}

CAF_TEST(the caller preempts the newest sequence and resumes it later) {
  spawn_manager(4, 4);
  // Two sequences of 6 prompt tokens, two pages each: the pool is full.
  admit(1, iota(1, 6), 8);
  write(1, 0, 6);
  commit(1, 6);
  admit(2, iota(100, 6), 8);
  write(2, 0, 6);
  commit(2, 6);
  // Sequence 1 grows past its reservation: no page left.
  write(1, 6, 8);
  commit(1, 8, ids{7, 8});
  CHECK_ERROR_REPLY(kv_write_plan, volt_errc::out_of_pages,
                    "needs 1 more KV pages", kv_write{1, 8, 9});
  // The caller preempts the most recent admission and retries.
  auto order = get<seqs>(kv, kv_order_atom_v);
  CAF_REQUIRE_EQUAL(order, seqs({1, 2}));
  CAF_CHECK_EQUAL(release(order.back()), 2);
  CAF_CHECK_EQUAL(write(1, 8, 9).block_table.size(), 3u);
  commit(1, 9, ids{9});
  release(1);
  // Resuming sequence 2 by recomputation reuses its committed full page.
  auto resumed = admit(2, iota(100, 6), 8);
  CAF_CHECK_EQUAL(resumed.cached_tokens, 4);
  CAF_CHECK_EQUAL(stats().pages_used, 2);
}

CAF_TEST(a step preempts the newest sequence when pages run out) {
  spawn_manager(4, 6);
  // Three sequences of 6 prompt tokens, two pages each: the pool is full.
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    admit(seq, iota(static_cast<int32_t>(10 * seq), 6), 6);
    write(seq, 0, 6);
    commit(seq, 6);
  }
  // Sequences 1 and 2 need a third page, sequence 3 none: sequence 3 (the
  // newest) gives its two pages up.
  auto grow = get<kv_step_plan>(
    kv, kv_step{{kv_write{1, 6, 9}, kv_write{2, 6, 9}, kv_write{3, 6, 7}}});
  CAF_CHECK_EQUAL(grow.preempted, seqs({3}));
  CAF_REQUIRE_EQUAL(grow.plans.size(), 2u);
  CAF_CHECK_EQUAL(grow.plans[0].seq, 1u);
  CAF_CHECK_EQUAL(grow.plans[0].block_table.size(), 3u);
  CAF_CHECK_EQUAL(grow.plans[1].seq, 2u);
  CAF_CHECK_EQUAL(grow.plans[1].block_table.size(), 3u);
  CAF_CHECK_EQUAL(get<seqs>(kv, kv_order_atom_v), seqs({1, 2}));
  // Sequence 2 is now the newest: when it needs more, it preempts itself
  // rather than the older sequence 1.
  get<int64_t>(
    kv, kv_sync{{kv_commit{1, 9, ids{1, 2, 3}}, kv_commit{2, 9, ids{4, 5, 6}}},
                {}});
  auto self_preempt
    = get<kv_step_plan>(kv, kv_step{{kv_write{2, 9, 13}, kv_write{1, 9, 13}}});
  CAF_CHECK_EQUAL(self_preempt.preempted, seqs({2}));
  CAF_REQUIRE_EQUAL(self_preempt.plans.size(), 1u);
  CAF_CHECK_EQUAL(self_preempt.plans[0].seq, 1u);
  CAF_CHECK_EQUAL(self_preempt.plans[0].block_table.size(), 4u);
  CAF_CHECK_EQUAL(stats().pages_used, 4);
  // A preempted sequence resumes by admission with all its tokens; its
  // committed full pages are still cached (evictable, not evicted) and are
  // reused, so only the last token is recomputed.
  release(1);
  auto tokens = iota(20, 6);
  tokens.insert(tokens.end(), {4, 5, 6});
  auto resumed = admit(2, tokens, 9);
  CAF_CHECK_EQUAL(resumed.cached_tokens, 8);
}

CAF_TEST(admission keeps headroom for the running sequences) {
  spawn_manager(4, 4);
  admit(1, iota(1, 6), 6);
  // Two more pages are free: a 4-token prompt fits, but not with two pages
  // of headroom.
  CHECK_ERROR_REPLY(kv_admission, volt_errc::out_of_pages,
                    "1 pages plus 2 headroom wanted, 2 available",
                    kv_admit{2, iota(50, 4), 4, 2});
  CAF_CHECK_EQUAL(get<seqs>(kv, kv_order_atom_v), seqs({1}));
  auto ok = get<kv_admission>(kv, kv_admit{2, iota(50, 4), 4, 1});
  CAF_CHECK_EQUAL(ok.block_table.size(), 1u);
  // A request that can never fit is refused as such, headroom or not.
  CHECK_ERROR_REPLY(kv_admission, volt_errc::invalid_request,
                    "the pool has only 4 pages",
                    kv_admit{3, iota(1, 3), 17, 1});
}

CAF_TEST(a sync commits then releases in order) {
  spawn_manager(4, 8);
  admit(1, iota(1, 9), 9);
  write(1, 0, 9);
  admit(2, iota(1, 9), 9);
  auto released = get<int64_t>(kv, kv_sync{{kv_commit{1, 9, {}}}, seqs{1, 2}});
  CAF_CHECK_EQUAL(released, 6);
  auto st = stats();
  CAF_CHECK_EQUAL(st.pages_used, 0);
  // Sequence 1's two full pages entered the prefix cache before release.
  CAF_CHECK_EQUAL(st.pages_cached, 2);
  CAF_CHECK_EQUAL(admit(3, iota(1, 9), 9).cached_tokens, 8);
}

CAF_TEST(release returns everything) {
  spawn_manager(4, 12);
  for (uint64_t seq = 0; seq < 3; ++seq) {
    auto prompt = iota(1, 9);
    prompt.back() = static_cast<int32_t>(seq);
    auto a = admit(seq, prompt, 10);
    write(seq, a.cached_tokens, 9);
    commit(seq, 9);
  }
  get<ids>(kv, kv_fork_atom_v, uint64_t{0}, uint64_t{10});
  write(10, 9, 10);
  commit(10, 10, ids{4});
  for (auto seq : get<seqs>(kv, kv_order_atom_v))
    release(seq);
  auto st = stats();
  CAF_CHECK_EQUAL(st.pages_used, 0);
  CAF_CHECK_EQUAL(st.pages_free + st.pages_cached, st.pages_total);
  CAF_CHECK_GREATER(st.prefix_hits, 0u);
  CAF_CHECK_GREATER(st.copy_on_write, 0u);
}

CAF_TEST(malformed messages get error replies) {
  spawn_manager(4, 8);
  admit(1, iota(1, 6), 8);
  auto bad = volt_errc::invalid_request;
  CHECK_ERROR_REPLY(kv_admission, bad, "sequence 1 is already admitted",
                    kv_admit{1, ids{1}, 4});
  CHECK_ERROR_REPLY(kv_admission, bad, "empty prompt", kv_admit{2, ids{}, 4});
  CHECK_ERROR_REPLY(kv_admission, bad, "prompt token 1 is -5",
                    kv_admit{2, ids{1, -5}, 4});
  CHECK_ERROR_REPLY(kv_admission, bad, "reserve_tokens is -1",
                    kv_admit{2, ids{1}, -1});
  CHECK_ERROR_REPLY(kv_admission, bad, "the pool has only 8 pages",
                    kv_admit{2, ids{1}, INT64_MAX});
  CHECK_ERROR_REPLY(kv_write_plan, bad, "unknown sequence 9",
                    kv_write{9, 0, 1});
  CHECK_ERROR_REPLY(kv_write_plan, bad, "out of order", kv_write{1, 4, 2});
  CHECK_ERROR_REPLY(kv_write_plan, bad, "out of order", kv_write{1, -2, 2});
  CHECK_ERROR_REPLY(kv_write_plan, bad, "computed only 0 tokens",
                    kv_write{1, 3, 4});
  CHECK_ERROR_REPLY(kv_write_plan, bad, "the pool has only 8 pages",
                    kv_write{1, 0, INT64_MAX});
  CHECK_ERROR_REPLY(int64_t, bad, "unknown sequence 9", kv_commit{9, 1, {}});
  CHECK_ERROR_REPLY(int64_t, bad, "only 6 token ids are known",
                    kv_commit{1, 7, {}});
  CHECK_ERROR_REPLY(int64_t, bad, "appended token 0 is -1",
                    kv_commit{1, 7, ids{-1}});
  CHECK_ERROR_REPLY(int64_t, bad, "its pages hold only 8",
                    kv_commit{1, 9, ids{1, 2, 3}});
  CHECK_ERROR_REPLY(ids, bad, "unknown sequence 9", kv_fork_atom_v, uint64_t{9},
                    uint64_t{3});
  CHECK_ERROR_REPLY(ids, bad, "sequence 1 already exists", kv_fork_atom_v,
                    uint64_t{1}, uint64_t{1});
  CHECK_ERROR_REPLY(int64_t, bad, "unknown sequence 9", kv_release_atom_v,
                    uint64_t{9});
  CHECK_ERROR_REPLY(ids, bad, "kv_table: unknown sequence 9", kv_table_atom_v,
                    uint64_t{9});
  CHECK_ERROR_REPLY(kv_admission, bad, "headroom_pages is negative",
                    kv_admit{2, ids{1}, 1, -1});
  CHECK_ERROR_REPLY(kv_step_plan, bad, "kv_step: unknown sequence 9",
                    kv_step{{kv_write{1, 0, 1}, kv_write{9, 0, 1}}});
  CHECK_ERROR_REPLY(kv_step_plan, bad, "sequence 1 writes twice",
                    kv_step{{kv_write{1, 0, 1}, kv_write{1, 1, 2}}});
  CHECK_ERROR_REPLY(kv_step_plan, bad, "out of order",
                    kv_step{{kv_write{1, 4, 2}}});
  CHECK_ERROR_REPLY(int64_t, bad, "unknown sequence 9",
                    kv_sync{{kv_commit{9, 1, {}}}, {}});
  CHECK_ERROR_REPLY(int64_t, bad, "unknown sequence 9", kv_sync{{}, seqs{9}});
  // Still serving, and nothing changed.
  CAF_CHECK_EQUAL(get<ids>(kv, kv_table_atom_v, uint64_t{1}), ids({0, 1}));
  CAF_CHECK_EQUAL(stats().pages_used, 2);
  CAF_CHECK_EQUAL(get<seqs>(kv, kv_order_atom_v), seqs({1}));
}

CAF_TEST(messages survive serialization) {
  // What a router on another node sends and receives.
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  kv_admit req{7, ids{1, 2, 3}, 40};
  req.headroom_pages = 3;
  kv_write_plan plan{5, ids{4, 5}, ids{1, 9}};
  page_table_stats st;
  st.pages_total = 64;
  st.prefix_hit_tokens = 12;
  kv_step step{{kv_write{1, 0, 3}, kv_write{2, 5, 6}}};
  kv_step_plan step_plan{{plan}, seqs{8, 9}};
  kv_sync sync{{kv_commit{1, 3, ids{4}}}, seqs{2}};
  CAF_REQUIRE(!sink(req, plan, st, step, step_plan, sync));
  kv_admit req2;
  kv_write_plan plan2;
  page_table_stats st2;
  kv_step step2;
  kv_step_plan step_plan2;
  kv_sync sync2;
  caf::binary_deserializer source{sys, buf};
  CAF_REQUIRE(!source(req2, plan2, st2, step2, step_plan2, sync2));
  CAF_CHECK_EQUAL(req2.headroom_pages, 3);
  CAF_CHECK_EQUAL(plan2.seq, 5u);
  CAF_REQUIRE_EQUAL(step2.writes.size(), 2u);
  CAF_CHECK_EQUAL(step2.writes[1].seq, 2u);
  CAF_CHECK_EQUAL(step2.writes[1].to, 6);
  CAF_REQUIRE_EQUAL(step_plan2.plans.size(), 1u);
  CAF_CHECK_EQUAL(step_plan2.plans[0].copies, ids({1, 9}));
  CAF_CHECK_EQUAL(step_plan2.preempted, seqs({8, 9}));
  CAF_REQUIRE_EQUAL(sync2.commits.size(), 1u);
  CAF_CHECK_EQUAL(sync2.commits[0].appended, ids({4}));
  CAF_CHECK_EQUAL(sync2.releases, seqs({2}));
  CAF_CHECK_EQUAL(req2.seq, 7u);
  CAF_CHECK_EQUAL(req2.prompt, ids({1, 2, 3}));
  CAF_CHECK_EQUAL(req2.reserve_tokens, 40);
  CAF_CHECK_EQUAL(plan2.block_table, ids({4, 5}));
  CAF_CHECK_EQUAL(plan2.copies, ids({1, 9}));
  CAF_CHECK_EQUAL(st2.pages_total, 64);
  CAF_CHECK_EQUAL(st2.prefix_hit_tokens, 12u);
}

CAF_TEST_FIXTURE_SCOPE_END
()
