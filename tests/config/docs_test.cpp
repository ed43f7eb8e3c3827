#define CAF_SUITE config.docs

// The key table is the one place that documents the keys: docs/CONFIGURATION.md
// must contain its rendering verbatim, and every entry must be consistent with
// node_config's defaults.

#include "config/config_keys.hpp"

#include <fstream>
#include <set>
#include <sstream>

#include "tests/config/config_test_helpers.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

const std::string docs_file = VOLT_TEST_DATA_DIR "/../../docs/CONFIGURATION.md";
const std::string begin_marker = "<!-- BEGIN GENERATED KEY REFERENCE";
const std::string end_marker = "<!-- END GENERATED KEY REFERENCE -->";

} // namespace

CAF_TEST(configuration docs contain the generated key reference) {
  std::ifstream in{docs_file};
  CAF_REQUIRE(in.is_open());
  std::ostringstream buf;
  buf << in.rdbuf();
  auto text = buf.str();
  auto begin = text.find(begin_marker);
  auto end = text.find(end_marker);
  CAF_REQUIRE(begin != std::string::npos && end != std::string::npos
              && begin < end);
  begin = text.find('\n', begin)
          + 1; // the marker line explains how to regenerate
  auto documented = text.substr(begin, end - begin);
  auto expected = config_reference_markdown();
  if (documented != expected) {
    // Leave the fresh rendering next to the test's working directory for
    // pasting.
    std::ofstream out{"CONFIGURATION.reference.md"};
    out << expected;
    CAF_FAIL(
      "docs/CONFIGURATION.md is out of date with config/config_keys.cpp; paste "
      "CONFIGURATION.reference.md (written to the working directory) between "
      "the "
      "markers");
  }
}

CAF_TEST(every key belongs to a section and every section has keys) {
  std::set<std::string> sections;
  for (const auto& section : config_sections()) {
    CAF_CHECK(sections.insert(section.name).second);
    CAF_CHECK(!config_key_names(section.name).empty());
  }
  std::set<std::string> keys;
  for (const auto& key : config_keys()) {
    CAF_CHECK_EQUAL(sections.count(key.section), 1u);
    CAF_CHECK(keys.insert(std::string{key.section} + "." + key.name).second);
    CAF_CHECK(std::string{key.doc}.size() > 10);
  }
}

CAF_TEST(integer keys have bounds) {
  for (const auto& key : config_keys()) {
    auto integral = key.access.type == key_type::integer
                    || key.access.type == key_type::integer_list;
    if (integral)
      CAF_CHECK_LESS(key.min, key.max);
  }
}

CAF_TEST(every default passes its own key checks) {
  // Writing each default back through the key's checks must succeed, or a
  // config that merely spells out the defaults would be rejected.
  const node_config defaults;
  for (const auto& key : config_keys()) {
    node_config cfg;
    auto value = key.access.get(defaults);
    auto problem = check_range(key, value);
    if (problem.empty())
      problem = key.access.set(cfg, value);
    CAF_CHECK_EQUAL(std::string{key.name} + ": " + problem,
                    std::string{key.name} + ": ");
  }
}

CAF_TEST(a file spelling out every default parses to the defaults) {
  const node_config defaults;
  std::string text;
  for (const auto& section : config_sections()) {
    text += "[" + std::string{section.name} + "]\n";
    for (const auto& key : config_keys())
      if (std::string_view{key.section} == section.name)
        text += std::string{key.name} + " = "
                + to_toml_literal(key.access.get(defaults)) + "\n";
  }
  // The only default that does not validate on its own is the (required) model
  // path.
  auto cfg = parse(text, {{"VOLT_MODEL_PATH", "m"}});
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  for (const auto& key : config_keys())
    if (env_name(key) != "VOLT_MODEL_PATH")
      CAF_CHECK_EQUAL(to_toml_literal(key.access.get(*cfg)),
                      to_toml_literal(key.access.get(defaults)));
}

CAF_TEST(toml literals) {
  CAF_CHECK_EQUAL(to_toml_literal(key_value{int64_t{7700}}), "7700");
  CAF_CHECK_EQUAL(to_toml_literal(key_value{std::string{"a\"b"}}),
                  "\"a\\\"b\"");
  CAF_CHECK_EQUAL(to_toml_literal(key_value{std::vector<int64_t>{0, 1}}),
                  "[0, 1]");
  CAF_CHECK_EQUAL(to_toml_literal(key_value{std::vector<std::string>{}}), "[]");
  CAF_CHECK_EQUAL(quote("a\nb\x01"), "\"a\\nb\\u0001\"");
}
