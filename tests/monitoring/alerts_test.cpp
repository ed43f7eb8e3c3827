#define CAF_SUITE monitoring.alerts

// monitoring/alerts.yml passes promtool's checks and its unit tests
// (monitoring/alerts_test.yml: each alert fires on a sick node and stays
// quiet on a healthy one), and the example scrape configuration that loads
// it is valid.

#include <regex>
#include <set>

#include "tests/cluster.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

std::string monitoring_file(const std::string& name) {
  return std::string{VOLT_MONITORING_DIR} + "/" + name;
}

/// The names captured by the first group of `pattern` in `text`.
std::set<std::string> names_in(const std::string& text, const std::string& pattern) {
  std::set<std::string> out;
  std::regex re{pattern};
  for (std::sregex_iterator it{text.begin(), text.end(), re}, end; it != end; ++it)
    out.insert((*it)[1].str());
  return out;
}

/// Runs promtool (unpacked by scripts/setup.sh) with `args` in monitoring/,
/// where the files name each other by relative paths.
run_result promtool(const std::string& args) {
  return run_process({"/bin/sh", "-c",
                      std::string{"cd "} + VOLT_MONITORING_DIR + " && "
                        + VOLT_PROMTOOL + " " + args});
}

void check_promtool(const std::string& args, const std::string& want) {
  auto r = promtool(args);
  CAF_CHECK_EQUAL(r.exit_code, 0);
  CAF_CHECK_NOT_EQUAL(r.out.find(want), std::string::npos);
  if (r.exit_code != 0 || r.out.find(want) == std::string::npos)
    CAF_MESSAGE("promtool " << args << ":\n" << r.out << r.err);
}

} // namespace

CAF_TEST(promtool accepts the alert rules) {
  check_promtool("check rules alerts.yml", "SUCCESS: 5 rules found");
}

CAF_TEST(every alert fires in its promtool unit test) {
  // promtool only runs the cases that exist: an alert without one would pass.
  auto alerts = names_in(read_text(monitoring_file("alerts.yml")),
                         R"(- alert: (\w+))");
  auto tested = names_in(read_text(monitoring_file("alerts_test.yml")),
                         R"(alertname: (\w+)\s+exp_alerts:\s+- exp_labels)");
  CAF_CHECK_EQUAL(alerts.size(), 5u);
  CAF_CHECK_EQUAL(alerts, tested);
  check_promtool("test rules alerts_test.yml", "SUCCESS");
}

CAF_TEST(promtool accepts the example prometheus configuration) {
  check_promtool("check config prometheus.yml", "SUCCESS: 1 rule files found");
}
