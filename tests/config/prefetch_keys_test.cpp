#define CAF_SUITE config.prefetch_keys

// The [prefetch] section: defaults, values from TOML and the environment,
// and errors naming the key for wrong types, ranges and a max_staged beyond
// the model's experts.

#include "config/node_config.hpp"

#include "tests/config/config_test_helpers.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

CAF_TEST(defaults match the documented values) {
  node_config cfg;
  CAF_CHECK_EQUAL(cfg.prefetch.enabled, false);
  CAF_CHECK_EQUAL(cfg.prefetch.ngram_order, 3u);
  CAF_CHECK_EQUAL(cfg.prefetch.lookahead_tokens, 1u);
  CAF_CHECK_EQUAL(cfg.prefetch.max_staged, 0u);
  CAF_CHECK_EQUAL(cfg.prefetch.min_chance_percent, 10u);
  CAF_CHECK_EQUAL(cfg.prefetch.stage_experts, false);
}

CAF_TEST(values from the file) {
  auto cfg = parse(with_model(R"([prefetch]
enabled = true
ngram_order = 4
lookahead_tokens = 2
max_staged = 3
min_chance_percent = 25
stage_experts = true
)"));
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->prefetch.enabled, true);
  CAF_CHECK_EQUAL(cfg->prefetch.ngram_order, 4u);
  CAF_CHECK_EQUAL(cfg->prefetch.lookahead_tokens, 2u);
  CAF_CHECK_EQUAL(cfg->prefetch.max_staged, 3u);
  CAF_CHECK_EQUAL(cfg->prefetch.min_chance_percent, 25u);
  CAF_CHECK_EQUAL(cfg->prefetch.stage_experts, true);
}

CAF_TEST(values from the environment) {
  auto cfg = parse(with_model(""), {{"VOLT_PREFETCH_ENABLED", "true"},
                                    {"VOLT_PREFETCH_NGRAM_ORDER", "1"}});
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->prefetch.enabled, true);
  CAF_CHECK_EQUAL(cfg->prefetch.ngram_order, 1u);
  cfg = parse(with_model("[prefetch]\nenabled = true\n"),
              {{"VOLT_PREFETCH_ENABLED", "0"}});
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->prefetch.enabled, false);
}

CAF_TEST(wrong types and out of range values name the key) {
  CHECK_CONFIG_ERROR(parse(with_model("[prefetch]\nenabled = 1\n")),
                     "node.toml: [prefetch] enabled", "boolean");
  CHECK_CONFIG_ERROR(parse(with_model("[prefetch]\nenabled = \"yes\"\n")),
                     "[prefetch] enabled", "boolean");
  CHECK_CONFIG_ERROR(parse(with_model(""), {{"VOLT_PREFETCH_ENABLED", "yes"}}),
                     "VOLT_PREFETCH_ENABLED", "expected true or false");
  CHECK_CONFIG_ERROR(parse(with_model("[prefetch]\nngram_order = 0\n")),
                     "[prefetch] ngram_order: expected an integer in [1, 16]",
                     "got 0");
  CHECK_CONFIG_ERROR(parse(with_model("[prefetch]\nngram_order = 17\n")),
                     "[prefetch] ngram_order", "got 17");
  CHECK_CONFIG_ERROR(parse(with_model("[prefetch]\nlookahead_tokens = 0\n")),
                     "[prefetch] lookahead_tokens", "[1, 64]");
  CHECK_CONFIG_ERROR(parse(with_model("[prefetch]\nmin_chance_percent = 101\n")),
                     "[prefetch] min_chance_percent", "[0, 100]", "got 101");
  CHECK_CONFIG_ERROR(parse(with_model("[prefetch]\nmax_staged = -1\n")),
                     "[prefetch] max_staged", "got -1");
  CHECK_CONFIG_ERROR(parse(with_model("[prefetch]\nngram = 3\n")),
                     "[prefetch]", "ngram");
}

CAF_TEST(max_staged may not exceed the experts of the model) {
  auto cfg = parse(with_model("[prefetch]\nmax_staged = 8\n"));
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK(!check_against_model(*cfg, 8, "m/config.json"));
  cfg->prefetch.max_staged = 9;
  CHECK_CONFIG_ERROR(check_against_model(*cfg, 8, "m/config.json"),
                     "node.toml: [prefetch] max_staged = 9 exceeds the "
                     "model's 8 experts per layer (m/config.json)");
}
