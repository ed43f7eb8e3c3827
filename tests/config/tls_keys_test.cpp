#define CAF_SUITE config.tls_keys

// The [security] section's TLS keys: defaults, a boolean from TOML and the
// environment, the three files as a set, insecure never together with them,
// and the rule that a node decides between TLS and plaintext.

#include "config/node_config.hpp"

#include "tests/config/config_test_helpers.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

const std::string all_files = R"([security]
tls_cert = "node.pem"
tls_key = "node-key.pem"
tls_ca = "ca.pem"
)";

} // namespace

CAF_TEST(defaults are no TLS files and not insecure) {
  node_config cfg;
  CAF_CHECK_EQUAL(cfg.security.tls_cert, "");
  CAF_CHECK_EQUAL(cfg.security.tls_key, "");
  CAF_CHECK_EQUAL(cfg.security.tls_ca, "");
  CAF_CHECK(!cfg.security.insecure);
}

CAF_TEST(the three files from the file and the environment) {
  auto cfg = parse(with_model(all_files));
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->security.tls_cert, "node.pem");
  CAF_CHECK_EQUAL(cfg->security.tls_key, "node-key.pem");
  CAF_CHECK_EQUAL(cfg->security.tls_ca, "ca.pem");
  CAF_CHECK_EQUAL(describe(check_link_security(*cfg)), "no error");
  auto env = parse(with_model(""), {{"VOLT_SECURITY_TLS_CERT", "a.pem"},
                                    {"VOLT_SECURITY_TLS_KEY", "a-key.pem"},
                                    {"VOLT_SECURITY_TLS_CA", "ca.pem"}});
  CAF_REQUIRE_EQUAL(message_of(env), "");
  CAF_CHECK_EQUAL(env->security.tls_cert, "a.pem");
}

CAF_TEST(insecure is a boolean in the file and true or false in the env) {
  auto cfg = parse(with_model("[security]\ninsecure = true\n"));
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK(cfg->security.insecure);
  CAF_CHECK_EQUAL(describe(check_link_security(*cfg)), "no error");
  auto from_env = parse(with_model(""), {{"VOLT_SECURITY_INSECURE", "true"}});
  CAF_REQUIRE_EQUAL(message_of(from_env), "");
  CAF_CHECK(from_env->security.insecure);
  auto off = parse(with_model("[security]\ninsecure = true\n"),
                   {{"VOLT_SECURITY_INSECURE", "false"}});
  CAF_REQUIRE_EQUAL(message_of(off), "");
  CAF_CHECK(!off->security.insecure);
  CAF_CHECK_EQUAL(
    error_mismatch(parse(with_model("[security]\ninsecure = 1\n")),
                   {"node.toml", "[security] insecure",
                    "expected a boolean, got an integer"}),
    "");
  CAF_CHECK_EQUAL(
    error_mismatch(parse(with_model(""), {{"VOLT_SECURITY_INSECURE", "yes"}}),
                   {"environment: VOLT_SECURITY_INSECURE: "
                    "expected true or false (or 1 or 0), got \"yes\""}),
    "");
}

CAF_TEST(the files come as a set of three) {
  CAF_CHECK_EQUAL(
    error_mismatch(parse(with_model("[security]\ntls_cert = \"c.pem\"\n")),
                   {"node.toml: [security] tls_key and tls_ca: missing "
                    "(tls_cert is set; mutual TLS needs"}),
    "");
  CAF_CHECK_EQUAL(error_mismatch(parse(with_model("[security]\ntls_cert = "
                                                  "\"c.pem\"\ntls_ca = "
                                                  "\"ca.pem\"\n")),
                                 {"node.toml: [security] tls_key: missing "
                                  "(tls_cert and tls_ca are set"}),
                  "");
  CAF_CHECK_EQUAL(
    error_mismatch(parse(with_model(""), {{"VOLT_SECURITY_TLS_KEY", "k.pem"}}),
                   {"[security] tls_cert and tls_ca: missing "
                    "(tls_key is set"}),
    "");
}

CAF_TEST(insecure together with the files is an error) {
  CAF_CHECK_EQUAL(
    error_mismatch(parse(with_model(all_files + "insecure = true\n")),
                   {"node.toml: [security] insecure: true while tls_cert, "
                    "tls_key and tls_ca are set; choose one"}),
    "");
}

CAF_TEST(a node needs the files or insecure) {
  auto cfg = parse(with_model(""));
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(error_mismatch(check_link_security(*cfg),
                                 {"node.toml: [security] tls_cert, tls_key "
                                  "and tls_ca: not set, and insecure is not "
                                  "true",
                                  "scripts/make_certs.sh"}),
                  "");
}
