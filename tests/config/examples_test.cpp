#define CAF_SUITE config.examples

// config/examples/*.toml load, validate and document every key of the key
// table.

#include "config/node_config.hpp"

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "config/config_keys.hpp"
#include "model/json.hpp"
#include "tests/config/config_test_helpers.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

const std::string repo_dir = VOLT_TEST_DATA_DIR "/../../";
const std::string examples_dir = repo_dir + "config/examples/";

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// Returns "section.key: problem" for each key of the table that `text` does
/// not show, active or commented out, right below a comment block with its
/// meaning and "Default: <value>".
std::vector<std::string> undocumented_keys(const std::string& text) {
  static const std::regex section_line{R"(^(# )?\[([a-z_]+)\]\s*$)"};
  static const std::regex key_line{R"(^(# )?([a-z][a-z0-9_]*) = .*$)"};
  std::set<std::string> seen;
  std::vector<std::string> problems;
  std::string section;
  std::string comments; // the comment block above the current line
  std::istringstream lines{text};
  const node_config defaults;
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_match(line, m, section_line)) {
      section = m[2];
      comments.clear();
    } else if (std::regex_match(line, m, key_line)) {
      auto name = section + "." + std::string{m[2]};
      const auto* key = find_config_key(section, std::string{m[2]});
      if (key == nullptr) {
        problems.push_back(name + ": not a key");
      } else {
        auto wanted = "Default: " + to_toml_literal(key->access.get(defaults));
        if (comments.find(wanted) == std::string::npos)
          problems.push_back(name + ": comment lacks '" + wanted + "'");
        if (comments.rfind("# Default:", 0)
            == 0) // the meaning goes above the default
          problems.push_back(
            name + ": comment lacks the key's meaning above 'Default:'");
        seen.insert(name);
      }
      comments.clear();
    } else if (line.rfind("#", 0) == 0) {
      comments += line + "\n";
    } else {
      comments.clear();
    }
  }
  for (const auto& key : config_keys()) {
    auto name = std::string{key.section} + "." + key.name;
    if (seen.count(name) == 0)
      problems.push_back(name + ": missing");
  }
  return problems;
}

/// Reads num_local_experts from a Hugging Face config.json; 0 if unreadable.
uint32_t num_local_experts(const std::string& config_json) {
  auto doc = json::parse_file(config_json);
  return doc ? doc->value("num_local_experts", 0u) : 0u;
}

void check_example(const std::string& name, node_role role) {
  auto file = examples_dir + name;
  auto cfg = load_node_config(file, {});
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK(cfg->node.role == role);
  // Relative model paths are relative to the working directory; the examples
  // assume the repository root.
  CAF_CHECK_EQUAL(cfg->model.path, "tests/data/tiny-mixtral-a");
  auto config_json = repo_dir + cfg->model.path + "/config.json";
  auto n_experts = num_local_experts(config_json);
  CAF_CHECK_EQUAL(n_experts, 8u);
  CAF_CHECK_EQUAL(describe(check_against_model(*cfg, n_experts, config_json)),
                  "no error");
  CAF_CHECK_EQUAL(undocumented_keys(read_file(file)),
                  std::vector<std::string>{});
}

} // namespace

CAF_TEST(standalone example) {
  check_example("standalone.toml", node_role::standalone);
}

CAF_TEST(router example) {
  check_example("router.toml", node_role::router);
  auto cfg = load_node_config(examples_dir + "router.toml", {});
  CAF_REQUIRE(cfg);
  CAF_CHECK(!cfg->router.workers.empty());
}

CAF_TEST(worker example) {
  check_example("worker.toml", node_role::worker);
  auto cfg = load_node_config(examples_dir + "worker.toml", {});
  CAF_REQUIRE(cfg);
  CAF_CHECK(!cfg->worker.experts.empty());
}

CAF_TEST(the worker example serves as a second worker through the environment) {
  auto cfg = load_node_config(examples_dir + "worker.toml",
                              {{"VOLT_NODE_ID", "worker-2"},
                               {"VOLT_NETWORK_PORT", "7802"},
                               {"VOLT_METRICS_PORT", "9102"},
                               {"VOLT_WORKER_EXPERTS", "4,5,6,7"}});
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->node.id, "worker-2");
  CAF_CHECK_EQUAL(cfg->network.port, 7802);
  CAF_CHECK(cfg->worker.experts == std::vector<uint32_t>({4, 5, 6, 7}));
}

CAF_TEST(the checker finds undocumented keys) {
  auto problems = undocumented_keys("[network]\n# Default: 7700\nport = 1\n");
  CAF_CHECK(!problems.empty());
  auto wrong_default
    = undocumented_keys("[network]\n# TCP port.\n# Default: 1\nport = 1\n");
  CAF_CHECK(std::find(wrong_default.begin(), wrong_default.end(),
                      "network.port: comment lacks 'Default: 7700'")
            != wrong_default.end());
}
