#define CAF_SUITE engine.kv_plan

// The engine's admission with headroom and its step planning with
// preemption, over a real page table (page size 4; a fresh pool hands out the
// lowest free page first). The page table's own rules have their suite
// (model.page_table).

#include "engine/kv_plan.hpp"

#include <numeric>

#include "base/error.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

using ids = std::vector<int32_t>;
using seqs = std::vector<uint64_t>;

ids iota(int32_t first, int32_t n) {
  ids result(static_cast<size_t>(n));
  std::iota(result.begin(), result.end(), first);
  return result;
}

/// Admits, writes and commits `prompt` whole.
void fill(page_table& pt, uint64_t seq, const ids& prompt) {
  auto n = static_cast<int64_t>(prompt.size());
  CAF_REQUIRE(pt.admit(seq, prompt, n));
  CAF_REQUIRE(pt.prepare_write(seq, 0, n));
  CAF_REQUIRE(!pt.commit(seq, n));
}

} // namespace

CAF_TEST(a step preempts the newest sequence when pages run out) {
  page_table pt{4, 6};
  // Three sequences of 6 prompt tokens, two pages each: the pool is full.
  for (uint64_t seq = 1; seq <= 3; ++seq)
    fill(pt, seq, iota(static_cast<int32_t>(10 * seq), 6));
  // Sequences 1 and 2 need a third page, sequence 3 none: sequence 3 (the
  // newest) gives its two pages up.
  auto grow = plan_kv_step(pt, {{1, 6, 9}, {2, 6, 9}, {3, 6, 7}});
  CAF_REQUIRE(grow);
  CAF_CHECK_EQUAL(grow->preempted, seqs({3}));
  CAF_CHECK(grow->copies.empty());
  CAF_CHECK_EQUAL(pt.block_table(1).size(), 3u);
  CAF_CHECK_EQUAL(pt.block_table(2).size(), 3u);
  CAF_CHECK_EQUAL(pt.sequences_by_admission(), seqs({1, 2}));
  // Sequence 2 is now the newest: when it needs more, it preempts itself
  // rather than the older sequence 1.
  CAF_REQUIRE(!pt.commit(1, 9, ids{1, 2, 3}));
  CAF_REQUIRE(!pt.commit(2, 9, ids{4, 5, 6}));
  auto self_preempt = plan_kv_step(pt, {{2, 9, 13}, {1, 9, 13}});
  CAF_REQUIRE(self_preempt);
  CAF_CHECK_EQUAL(self_preempt->preempted, seqs({2}));
  CAF_CHECK_EQUAL(pt.block_table(1).size(), 4u);
  CAF_CHECK_EQUAL(pt.stats().pages_used, 4);
  // A preempted sequence resumes by admission with all its tokens; its
  // committed full pages are still cached (evictable, not evicted) and are
  // reused, so only the last token is recomputed.
  CAF_REQUIRE(!pt.release(1));
  auto tokens = iota(20, 6);
  tokens.insert(tokens.end(), {4, 5, 6});
  auto resumed = admit_with_headroom(pt, 2, tokens, 9, 0);
  CAF_REQUIRE(resumed);
  CAF_CHECK_EQUAL(resumed->cached_tokens, 8);
}

CAF_TEST(the copies of a preempted writer are dropped) {
  page_table pt{4, 3};
  fill(pt, 1, iota(1, 6));
  CAF_REQUIRE(!pt.fork(1, 2));
  // Sequence 2 writes into the shared second page, a copy into the last
  // free page; then sequence 1 needs a page for position 8 and none is left:
  // sequence 2, the newest, goes, and its copy with it (its page is sequence
  // 1's now).
  auto plan = plan_kv_step(pt, {{2, 6, 7}, {1, 6, 9}});
  CAF_REQUIRE(plan);
  CAF_CHECK_EQUAL(plan->preempted, seqs({2}));
  CAF_CHECK(plan->copies.empty());
  CAF_CHECK_EQUAL(pt.block_table(1), ids({0, 1, 2}));
  CAF_CHECK_EQUAL(pt.sequences_by_admission(), seqs({1}));
  // Without the squeeze the copy stays.
  page_table roomy{4, 4};
  fill(roomy, 1, iota(1, 6));
  CAF_REQUIRE(!roomy.fork(1, 2));
  auto kept = plan_kv_step(roomy, {{2, 6, 7}, {1, 6, 7}});
  CAF_REQUIRE(kept);
  CAF_REQUIRE_EQUAL(kept->copies.size(), 1u);
  CAF_CHECK_EQUAL(kept->copies[0].seq, 2u);
  CAF_REQUIRE_EQUAL(kept->copies[0].copies.size(), 1u);
  CAF_CHECK_EQUAL(kept->copies[0].copies[0].src, 1);
  CAF_CHECK_EQUAL(kept->copies[0].copies[0].dst, 2);
}

CAF_TEST(admission keeps headroom for the running sequences) {
  page_table pt{4, 4};
  CAF_REQUIRE(pt.admit(1, iota(1, 6), 6));
  // Two more pages are free: a 4-token prompt fits, but not with two pages
  // of headroom.
  auto tight = admit_with_headroom(pt, 2, iota(50, 4), 4, 2);
  CAF_REQUIRE(!tight);
  CAF_CHECK(tight.error() == volt_errc::out_of_pages);
  CAF_CHECK_EQUAL(describe(tight.error()),
                  "admit: 1 pages plus 2 headroom wanted, 2 available");
  CAF_CHECK_EQUAL(pt.sequences_by_admission(), seqs({1}));
  auto ok = admit_with_headroom(pt, 2, iota(50, 4), 4, 1);
  CAF_REQUIRE(ok);
  CAF_CHECK_EQUAL(ok->block_table.size(), 1u);
  // A request that can never fit is refused as such, headroom or not.
  auto never = admit_with_headroom(pt, 3, iota(1, 3), 17, 1);
  CAF_REQUIRE(!never);
  CAF_CHECK(never.error() == volt_errc::invalid_request);
  CAF_CHECK_NOT_EQUAL(describe(never.error()).find("the pool has only 4 pages"),
                      std::string::npos);
  auto negative = admit_with_headroom(pt, 3, iota(1, 3), 3, -1);
  CAF_REQUIRE(!negative);
  CAF_CHECK(negative.error() == volt_errc::invalid_request);
}

CAF_TEST(malformed steps are errors that change nothing) {
  page_table pt{4, 8};
  fill(pt, 1, iota(1, 6));
  auto before = pt.stats();
  for (auto [writes, fragment] :
       std::vector<std::pair<std::vector<kv_write>, std::string>>{
         {{{1, 6, 7}, {9, 0, 1}}, "kv step: unknown sequence 9"},
         {{{1, 6, 7}, {1, 7, 8}}, "sequence 1 writes twice"},
         {{{1, 8, 9}}, "computed only 6 tokens"},
       }) {
    auto plan = plan_kv_step(pt, writes);
    CAF_REQUIRE(!plan);
    CAF_CHECK(plan.error() == volt_errc::invalid_request);
    CAF_CHECK_NOT_EQUAL(describe(plan.error()).find(fragment),
                        std::string::npos);
  }
  CAF_CHECK_EQUAL(pt.stats().pages_used, before.pages_used);
  CAF_CHECK_EQUAL(pt.block_table(1), ids({0, 1}));
}
