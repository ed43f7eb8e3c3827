#pragma once

// What tests of volt-node's command line share: running `generate` and
// checking the one-line errors of bad input.

#include <algorithm>
#include <string>
#include <vector>

#include "tests/process.hpp"
#include "tests/test_dsl.hpp"

namespace volt::test {

/// Runs `volt-node generate` with `flags` (and `env`, "NAME=value" each).
inline run_result generate(std::vector<std::string> flags,
                           const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv{volt_node_binary(), "generate"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return run_process(argv, std::chrono::seconds{60}, env);
}

/// Checks exit code 2 and a single stderr line that contains every fragment.
inline void check_bad_input(const run_result& r,
                            std::vector<std::string> fragments) {
  CAF_CHECK_EQUAL(r.exit_code, 2);
  CAF_CHECK_EQUAL(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  for (const auto& f : fragments)
    if (r.err.find(f) == std::string::npos)
      CAF_FAIL("stderr '" << r.err << "' lacks '" << f << "'");
  CAF_CHECK(r.out.empty());
}

} // namespace volt::test
