#define CAF_SUITE http.openai_client

// A real standalone node driven by the official OpenAI client for Node.js
// (npm package `openai`, installed by install_openai.sh into the build
// folder): completions and chat, streamed and not, n = 2, stop strings,
// seeds, echo, the reference continuations, and bad requests, all with an
// API key of the node's [http] api_keys_file; with another key the client
// gets its AuthenticationError. The script prints one JSON verdict per
// check; each becomes a check here. Node.js and
// the package are required: without them the suite fails, it does not skip.

#include <nlohmann/json.hpp>

#include "tests/http/api_fixture.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

const std::string script_dir = VOLT_TEST_DATA_DIR "/../http";

/// Where npm puts the client: $VOLT_NPM_DIR (set by ctest), else npm/ in the
/// build folder of this test binary.
std::string npm_dir() {
  if (auto dir = getenv("VOLT_NPM_DIR"))
    return dir;
  char exe[4096] = {0};
  auto n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  auto path = std::string{exe, n > 0 ? static_cast<size_t>(n) : 0};
  return path.substr(0, path.rfind('/')) + "/../npm";
}

/// Installs the client once per build folder; the error output when that
/// fails.
std::string install_client() {
  auto r = run_process({"/bin/bash", script_dir + "/install_openai.sh",
                        npm_dir()},
                       std::chrono::seconds{300});
  return r.exit_code == 0 ? std::string{} : r.out + r.err;
}

} // namespace

CAF_TEST(the official OpenAI client gets the answers it expects) {
  auto node_bin = run_process({"/usr/bin/env", "node", "--version"});
  if (node_bin.exit_code != 0)
    CAF_FAIL("node (Node.js) is not installed: scripts/setup.sh installs it");
  auto install = install_client();
  if (!install.empty())
    CAF_FAIL("npm could not install the openai package into "
             << npm_dir() << ": " << install);
  temp_dir keys;
  const std::string key = "sk-volt-openai-client-test";
  write_text(keys.file("api_keys"), "# the client's key\n" + key + "\n");
  api_node node{"chat_template = \"mistral\"\napi_keys_file = \""
                + keys.file("api_keys") + "\"\n"};
  CAF_REQUIRE(node.wait_ready());
  auto r = run_process(
    {"/usr/bin/env", "node", script_dir + "/openai_client.mjs"},
    std::chrono::seconds{300},
    {"VOLT_API_URL=" + node.base_url() + "/v1",
     "VOLT_REFERENCE=" + text_model() + "/reference.json",
     "VOLT_NPM_DIR=" + npm_dir(), "VOLT_API_KEY=" + key});
  std::istringstream lines{r.out};
  size_t verdicts = 0;
  for (std::string line; std::getline(lines, line);) {
    auto v = nlohmann::json::parse(line, nullptr, false);
    if (v.is_discarded() || !v.contains("ok")) {
      CAF_MESSAGE("script: " << line);
      continue;
    }
    ++verdicts;
    auto name = v["name"].get<std::string>();
    if (v["ok"].get<bool>())
      CAF_MESSAGE("ok: " << name);
    else
      CAF_CHECK_EQUAL(name + ": " + v["detail"].get<std::string>(), name);
  }
  if (!r.err.empty())
    CAF_MESSAGE("script stderr: " << r.err);
  CAF_CHECK_GREATER(verdicts, 40u);
  CAF_CHECK_EQUAL(r.exit_code, 0);
}
