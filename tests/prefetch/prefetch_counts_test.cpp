#define CAF_SUITE prefetch.counts

// The arithmetic of precision, recall and experts staged per step, and how
// a rank's measured chance follows what it hits.

#include "prefetch/prefetch_counts.hpp"
#include "prefetch/rank_calibration.hpp"

#include "tests/test_dsl.hpp"

using namespace volt::prefetch;

CAF_TEST(a step counts named and hit and routed experts) {
  prefetch_counts c;
  c.add({3, 1, 2}, {2, 3, 5});
  CAF_CHECK_EQUAL(c.steps, 1u);
  CAF_CHECK_EQUAL(c.predicted, 3u);
  CAF_CHECK_EQUAL(c.hits, 2u);
  CAF_CHECK_EQUAL(c.actual, 3u);
  c.add({}, {0, 7});
  CAF_CHECK_EQUAL(c.steps, 2u);
  CAF_CHECK_EQUAL(c.hits, 2u);
  CAF_CHECK_EQUAL(c.actual, 5u);
  CAF_CHECK_EQUAL(c.precision(), 2.0 / 3.0);
  CAF_CHECK_EQUAL(c.recall(), 2.0 / 5.0);
  CAF_CHECK_EQUAL(c.mean_predicted(), 1.5);
}

CAF_TEST(nothing named or routed gives zeros rather than a division by zero) {
  prefetch_counts c;
  CAF_CHECK_EQUAL(c.precision(), 0.0);
  CAF_CHECK_EQUAL(c.recall(), 0.0);
  CAF_CHECK_EQUAL(c.mean_predicted(), 0.0);
  c.add({}, {1});
  CAF_CHECK_EQUAL(c.precision(), 0.0);
  CAF_CHECK_EQUAL(c.recall(), 0.0);
}

CAF_TEST(counts add up over layers) {
  prefetch_counts a;
  a.add({0, 1}, {0, 1});
  prefetch_counts b;
  b.add({2, 3, 4, 5}, {4, 6});
  a += b;
  CAF_CHECK_EQUAL(a.steps, 2u);
  CAF_CHECK_EQUAL(a.predicted, 6u);
  CAF_CHECK_EQUAL(a.hits, 3u);
  CAF_CHECK_EQUAL(a.actual, 4u);
  CAF_CHECK_EQUAL(a.precision(), 0.5);
  CAF_CHECK_EQUAL(a.recall(), 0.75);
  CAF_CHECK_EQUAL(a.mean_predicted(), 3.0);
}

CAF_TEST(the chance of a rank starts at one half and follows its hits) {
  rank_calibration cal{2, 3, 8};
  CAF_CHECK_EQUAL(cal.chance(0, 0), 0.5f);
  CAF_CHECK_EQUAL(cal.chance(1, 2), 0.5f);
  CAF_CHECK_EQUAL(cal.chance(0, 3), 0.0f); // beyond the tracked ranks
  const uint32_t ranked[] = {4, 5, 6};
  const int32_t chosen[] = {4, 7};
  cal.observe(0, ranked, 3, chosen, 2);
  // Rank 0 hit: 2 of 3; ranks 1 and 2 missed: 1 of 3; layer 1 unchanged.
  CAF_CHECK_EQUAL(cal.chance(0, 0), 2.0f / 3.0f);
  CAF_CHECK_EQUAL(cal.chance(0, 1), 1.0f / 3.0f);
  CAF_CHECK_EQUAL(cal.chance(0, 2), 1.0f / 3.0f);
  CAF_CHECK_EQUAL(cal.chance(1, 0), 0.5f);
  // Misses only: tries halve at the window of 8, so the chance keeps
  // falling towards 0 without the start's weight holding it up.
  for (int i = 0; i < 40; ++i)
    cal.observe(0, ranked + 1, 1, chosen, 2);
  CAF_CHECK_LESS(cal.chance(0, 0), 0.02f);
  // And climbs back once the rank is right again.
  for (int i = 0; i < 40; ++i)
    cal.observe(0, ranked, 1, chosen, 2);
  CAF_CHECK_GREATER(cal.chance(0, 0), 0.98f);
}
