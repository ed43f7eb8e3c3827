#define CAF_SUITE base.error

#include "base/error.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;

CAF_TEST(describe returns the one - line context of a volt error) {
  auto err = make_volt_error(volt_errc::invalid_config,
                             "a.toml: [network] port: too large");
  CAF_CHECK_EQUAL(describe(err), "a.toml: [network] port: too large");
  CAF_CHECK(err == volt_errc::invalid_config);
  CAF_CHECK_EQUAL(describe(caf::error{}), "no error");
}
