#define CAF_SUITE base.log_throttle

// per_key_log_throttle: one line per key and window, the repeats counted and
// handed out once the window is over.

#include "base/log_throttle.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;
using namespace std::chrono_literals;

CAF_TEST(one line per key within a window and a count of the rest) {
  per_key_log_throttle throttle{60s};
  per_key_log_throttle::clock::time_point t0{};
  CAF_CHECK(throttle.pass("10.0.0.9: no certificate", t0));
  for (int i = 0; i < 4; ++i)
    CAF_CHECK(!throttle.pass("10.0.0.9: no certificate", t0 + 1s * i));
  // Another peer or another cause has a window of its own.
  CAF_CHECK(throttle.pass("10.0.0.8: no certificate", t0 + 2s));
  CAF_CHECK(throttle.pass("10.0.0.9: plaintext", t0 + 2s));
  CAF_CHECK(throttle.pending());
  CAF_CHECK(throttle.expired(t0 + 59s).empty());
  auto summary = throttle.expired(t0 + 62s);
  CAF_REQUIRE_EQUAL(summary.size(), 1u);
  CAF_CHECK_EQUAL(summary[0].first, "10.0.0.9: no certificate");
  CAF_CHECK_EQUAL(summary[0].second, 4u);
  CAF_CHECK(!throttle.pending());
  // After the window the key logs again.
  CAF_CHECK(throttle.pass("10.0.0.9: no certificate", t0 + 63s));
}

CAF_TEST(a key whose window ended logs again even without expired) {
  per_key_log_throttle throttle{10s};
  per_key_log_throttle::clock::time_point t0{};
  CAF_CHECK(throttle.pass("k", t0));
  CAF_CHECK(!throttle.pass("k", t0 + 5s));
  CAF_CHECK(throttle.pass("k", t0 + 11s));
  CAF_CHECK(!throttle.pass("k", t0 + 12s));
}
