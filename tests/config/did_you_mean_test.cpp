#define CAF_SUITE config.did_you_mean

#include "config/did_you_mean.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;

CAF_TEST(edit distance counts adjacent swaps as one edit) {
  CAF_CHECK_EQUAL(edit_distance("port", "port"), 0u);
  CAF_CHECK_EQUAL(edit_distance("prot", "port"), 1u);
  CAF_CHECK_EQUAL(edit_distance("netwrok", "network"), 1u);
  CAF_CHECK_EQUAL(edit_distance("wroker", "worker"), 1u);
  CAF_CHECK_EQUAL(edit_distance("", "abc"), 3u);
  CAF_CHECK_EQUAL(edit_distance("kitten", "sitting"), 3u);
}

CAF_TEST(closest match suggests typos only) {
  std::vector<std::string> keys{"host", "port"};
  CAF_CHECK_EQUAL(closest_match("prot", keys), "port");
  CAF_CHECK_EQUAL(closest_match("hots", keys), "host");
  CAF_CHECK_EQUAL(closest_match("prt", keys), "port");
  CAF_CHECK_EQUAL(closest_match("bandwidth", keys), "");
  std::vector<std::string> short_keys{"id"};
  CAF_CHECK_EQUAL(closest_match("xy", short_keys), "");
  std::vector<std::string> sections{"node", "metrics"};
  CAF_CHECK_EQUAL(closest_match("metrix", sections), "metrics");
}
