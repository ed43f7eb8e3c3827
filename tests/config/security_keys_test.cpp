#define CAF_SUITE config.security

// The keys that authenticate: [security] cluster_secret and
// cluster_secret_file, [http] api_keys_file and public_paths. Every mistake
// is one line naming the file and the key, and never repeats a secret.

#include <sys/stat.h>

#include "config/node_config.hpp"

#include "tests/config/config_test_helpers.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

const std::string good_secret = "0123456789abcdef0123456789abcdef"; // 32

std::string with(const std::string& extra) {
  return "[model]\npath = \"m\"\n" + extra;
}

std::string secret_file_toml(const std::string& path) {
  return with("[security]\ncluster_secret_file = \"" + path + "\"\n");
}

} // namespace

CAF_TEST(a cluster secret is at least 32 characters) {
  auto cfg
    = parse(with("[security]\ncluster_secret = \"" + good_secret + "\"\n"));
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->security.cluster_secret, good_secret);
  auto short_one = parse(with("[security]\ncluster_secret = \"hunter2\"\n"));
  CHECK_CONFIG_ERROR(short_one, "node.toml: [security] cluster_secret: ",
                     "7 characters; at least 32");
  CAF_CHECK_EQUAL(message_of(short_one).find("hunter2"), std::string::npos);
  // The environment, as every key can be set.
  auto env = parse(with(""), {{"VOLT_SECURITY_CLUSTER_SECRET", "abc"}});
  CHECK_CONFIG_ERROR(env, "VOLT_SECURITY_CLUSTER_SECRET", "3 characters");
  CAF_CHECK_EQUAL(message_of(env).find("abc"), std::string::npos);
  // Empty: records are not signed.
  auto none = parse(with(""));
  CAF_REQUIRE(none);
  CAF_CHECK(none->security.cluster_secret.empty());
}

CAF_TEST(a cluster secret file is read without its surrounding whitespace) {
  temp_dir dir;
  auto path = dir.file("secret");
  write_text(path, "  " + good_secret + "\n\n");
  ::chmod(path.c_str(), 0600);
  auto cfg = parse(secret_file_toml(path));
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->security.cluster_secret, good_secret);
  CAF_CHECK_EQUAL(cfg->security.cluster_secret_file, path);
}

CAF_TEST(a bad cluster secret file is one line naming the key and the file) {
  temp_dir dir;
  auto missing = dir.file("missing");
  CHECK_CONFIG_ERROR(parse(secret_file_toml(missing)),
                     "node.toml: [security] cluster_secret_file: " + missing,
                     "cannot open (No such file or directory)");
  auto empty = dir.file("empty");
  write_text(empty, "\n");
  CHECK_CONFIG_ERROR(parse(secret_file_toml(empty)),
                     "[security] cluster_secret_file: " + empty + " is empty");
  auto short_file = dir.file("short");
  write_text(short_file, "s3cret-but-short\n");
  auto cfg = parse(secret_file_toml(short_file));
  CHECK_CONFIG_ERROR(cfg, "[security] cluster_secret_file: " + short_file,
                     "16 characters; at least 32");
  CAF_CHECK_EQUAL(message_of(cfg).find("s3cret"), std::string::npos);
  CHECK_CONFIG_ERROR(parse(secret_file_toml(dir.path())),
                     "[security] cluster_secret_file: " + dir.path(),
                     "cannot open (is a directory)");
}

CAF_TEST(a cluster secret comes from one key only) {
  temp_dir dir;
  auto path = dir.file("secret");
  write_text(path, good_secret);
  auto both = parse(with("[security]\ncluster_secret = \"" + good_secret
                         + "\"\ncluster_secret_file = \"" + path + "\"\n"));
  CHECK_CONFIG_ERROR(both, "node.toml: [security] cluster_secret_file: set "
                           "either cluster_secret or cluster_secret_file, "
                           "not both");
  auto mixed = parse(secret_file_toml(path),
                     {{"VOLT_SECURITY_CLUSTER_SECRET", good_secret}});
  CHECK_CONFIG_ERROR(mixed, "not both");
}

CAF_TEST(public paths are health and metrics or fewer) {
  auto cfg = parse(with(""));
  CAF_REQUIRE(cfg);
  CAF_CHECK_EQUAL(cfg->http.public_paths,
                  std::vector<std::string>({"/health", "/metrics"}));
  CAF_CHECK(cfg->http.api_keys_file.empty());
  auto none = parse(with("[http]\npublic_paths = []\n"));
  CAF_REQUIRE(none);
  CAF_CHECK(none->http.public_paths.empty());
  CHECK_CONFIG_ERROR(parse(with("[http]\npublic_paths = [\"/v1/models\"]\n")),
                     "node.toml: [http] public_paths: element 0: expected "
                     "\"/health\" or \"/metrics\", got \"/v1/models\"");
  CHECK_CONFIG_ERROR(
    parse(with("[http]\npublic_paths = [\"/health\", \"/health\"]\n")),
    "[http] public_paths: \"/health\" is listed twice");
  CHECK_CONFIG_ERROR(parse(with("[http]\npublic_paths = \"/health\"\n")),
                     "[http] public_paths: expected an array of strings");
}
