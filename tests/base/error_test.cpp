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

CAF_TEST(a message stays one line whatever it quotes) {
  // Found by fuzz.node_config: a variable's value with a line break made a
  // two-line message (and could forge a log line).
  auto err = make_volt_error(volt_errc::invalid_config,
                             "VOLT_NODE_ROLE: unknown role 'a\nb\r'");
  CAF_CHECK_EQUAL(describe(err), "VOLT_NODE_ROLE: unknown role 'a\\nb\\r'");
}
