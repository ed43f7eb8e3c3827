#define CAF_SUITE monitoring.dashboard

// monitoring/grafana-dashboard.json against a real Prometheus server that
// scrapes a real router and worker under client load: every query parses,
// and every query over metrics the nodes export returns numbers. The alert
// rules are loaded into the same server and must evaluate without errors.

#include <regex>

#include "tests/cluster.hpp"
#include "tests/monitoring/client_load.hpp"
#include "tests/monitoring/dashboard_queries.hpp"
#include "tests/monitoring/prometheus_server.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

// Metrics that the dashboard and the alerts already use but that no node
// exports yet (other work adds them). While Prometheus has never seen one of
// these names, the queries over it only have to parse; once a node exports
// it, they must return data like every other query.
const std::set<std::string> not_yet_exported = {
};

// Metrics that every node exports from its start, whatever it does: queries
// over them must return data, so the test checks these names are stored.
const std::set<std::string> always_exported = {
  "voltinfer_autoscaler_actions_total",
};

/// The dashboard's rows, top to bottom.
const std::vector<std::string> expected_rows = {
  "Latency", "Throughput", "Queue",       "Experts",
  "KV cache", "Failover",  "Degradation", "Autoscaler"};

std::string monitoring_file(const std::string& name) {
  return std::string{VOLT_MONITORING_DIR} + "/" + name;
}

json::value load_dashboard() {
  auto dash = json::parse_file(monitoring_file("grafana-dashboard.json"));
  if (!dash)
    CAF_FAIL(describe(dash.error()));
  return std::move(*dash);
}

/// Grafana's variables as Grafana would expand them for this test's
/// Prometheus (scraping every second) over the dashboard's default hour:
/// $__rate_interval is at least four scrape intervals (15 s also holds a few
/// requests of a slow machine), and every "All" variable takes its allValue.
std::map<std::string, std::string> variable_values(const json::value& dash) {
  std::map<std::string, std::string> out{
    {"__rate_interval", "15s"}, {"__interval", "5s"}, {"__range", "1h"}};
  for (auto* var : dashboard_variables(dash))
    if (string_at(*var, "type") == "query")
      out[string_at(*var, "name")] = string_at(*var, "allValue");
  return out;
}

/// The metric names Prometheus has stored.
std::set<std::string> stored_names(const prometheus_server& prom) {
  std::set<std::string> out;
  auto answer = prom.get("/api/v1/label/__name__/values");
  auto data = json::find(answer.body, "data");
  if (data != nullptr && data->is_array())
    for (const auto& name : *data)
      out.insert(name.get<std::string>());
  return out;
}

/// A scalar query's value, or -1 without one.
double scalar(const prometheus_server& prom, const std::string& promql) {
  auto answer = prom.query(promql);
  auto result = query_result(answer.body);
  if (result == nullptr || result->size() != 1)
    return -1;
  auto value = json::find((*result)[0], "value");
  if (value == nullptr || !value->is_array() || value->size() != 2)
    return -1;
  return std::strtod((*value)[1].get<std::string>().c_str(), nullptr);
}

/// The dashboard's queries asked of Prometheus once.
struct query_report {
  std::vector<std::string> problems;
  size_t with_data = 0;  // over exported metrics: answered with numbers
  size_t parse_only = 0; // over metrics not yet exported: only parsed
};

/// Asks Prometheus every query of the dashboard now.
query_report ask_queries(const prometheus_server& prom, const json::value& dash) {
  query_report report;
  auto& problems = report.problems;
  auto stored = stored_names(prom);
  auto values = variable_values(dash);
  for (const auto& q : dashboard_queries(dash)) {
    auto where = q.where + " (" + q.expr + ")";
    std::set<std::string> unknown;
    auto expr = expand_variables(q.expr, values, unknown);
    for (const auto& name : unknown)
      problems.push_back(where + " uses the variable $" + name
                         + ", which this test does not model");
    bool pending = false;
    for (const auto& name : metric_names(expr)) {
      if (stored.count(name) != 0)
        continue;
      if (not_yet_exported.count(name) != 0)
        pending = true;
      else
        problems.push_back(where + " reads " + name
                           + ", which no node exports");
    }
    auto answer = prom.query(expr);
    if (!answer.error.empty()) {
      problems.push_back(where + ": " + answer.error);
      continue;
    }
    auto result = query_result(answer.body);
    if (result == nullptr)
      problems.push_back(where + " fails: " + json::dump(answer.body));
    else if (pending)
      ++report.parse_only;
    else if (result->empty())
      problems.push_back(where + " returns no data");
    else if (!has_finite_sample(*result))
      problems.push_back(where + " returns no number: " + json::dump(*result));
    else
      ++report.with_data;
  }
  return report;
}

/// What is wrong with the alert rules Prometheus evaluates right now.
std::vector<std::string> rule_problems(const prometheus_server& prom) {
  std::set<std::string> missing = {"VoltNodeDown", "VoltQueueDepthHigh",
                                   "VoltP99LatencyHigh", "VoltDegradedServing"};
  std::vector<std::string> problems;
  auto answer = prom.get("/api/v1/rules");
  auto data = json::find(answer.body, "data");
  auto groups = data ? json::find(*data, "groups") : nullptr;
  if (groups == nullptr || !groups->is_array())
    return {"no rule groups: " + answer.error + json::dump(answer.body)};
  for (const auto& group : *groups) {
    auto rules = json::find(group, "rules");
    if (rules == nullptr || !rules->is_array())
      continue;
    for (const auto& rule : *rules) {
      auto name = string_at(rule, "name");
      missing.erase(name);
      if (string_at(rule, "lastEvaluation").rfind("0001-", 0) == 0)
        problems.push_back(name + " was not evaluated yet");
      if (string_at(rule, "health") != "ok")
        problems.push_back(name + ": " + string_at(rule, "lastError"));
      // Both nodes answer every scrape.
      if (name == "VoltNodeDown" && string_at(rule, "state") != "inactive")
        problems.push_back(name + " is " + string_at(rule, "state"));
    }
  }
  for (const auto& name : missing)
    problems.push_back(name + " is not loaded");
  return problems;
}

} // namespace

CAF_TEST(the dashboard is an importable grafana dashboard with every row) {
  auto dash = load_dashboard();
  auto schema = json::find(dash, "schemaVersion");
  CAF_REQUIRE(schema != nullptr && schema->is_number_integer());
  CAF_CHECK_GREATER_OR_EQUAL(schema->get<int>(), 36);
  CAF_CHECK(std::regex_match(string_at(dash, "uid"),
                             std::regex{"[A-Za-z0-9_-]{1,40}"}));
  CAF_CHECK(!string_at(dash, "title").empty());
  // Import gives the dashboard an id of the importing Grafana.
  CAF_CHECK(json::find(dash, "id") == nullptr || json::find(dash, "id")->is_null());
  bool has_datasource_variable = false;
  for (auto* var : dashboard_variables(dash))
    if (string_at(*var, "name") == "datasource"
        && string_at(*var, "type") == "datasource"
        && string_at(*var, "query") == "prometheus")
      has_datasource_variable = true;
  CAF_CHECK(has_datasource_variable);
  std::vector<std::string> rows;
  std::set<int64_t> ids;
  size_t heatmaps = 0, targets = 0;
  for (auto* panel : dashboard_panels(dash)) {
    auto title = string_at(*panel, "title");
    auto int_at = [](const json::value* x, const char* key) {
      auto v = x != nullptr ? json::find(*x, key) : nullptr;
      return v != nullptr ? json::to_int64(*v) : std::nullopt;
    };
    auto id = int_at(panel, "id");
    CAF_CHECK(id && ids.insert(*id).second);
    // Grafana's grid is 24 columns wide.
    auto grid = json::find(*panel, "gridPos");
    auto x = int_at(grid, "x"), w = int_at(grid, "w"), h = int_at(grid, "h");
    CAF_CHECK(x && w && h && *x >= 0 && *w > 0 && *h > 0 && *x + *w <= 24);
    if (string_at(*panel, "type") == "row") {
      rows.push_back(title);
      continue;
    }
    // Every panel queries the data source the user picks at import.
    auto ds = json::find(*panel, "datasource");
    CAF_CHECK(ds != nullptr && string_at(*ds, "uid") == "${datasource}");
    std::set<std::string> ref_ids;
    auto panel_targets = json::find(*panel, "targets");
    CAF_REQUIRE(panel_targets != nullptr && panel_targets->is_array()
                && !panel_targets->empty());
    for (const auto& target : *panel_targets) {
      ++targets;
      CAF_CHECK(ref_ids.insert(string_at(target, "refId")).second);
      CAF_CHECK(!string_at(target, "expr").empty());
    }
    if (string_at(*panel, "type") == "heatmap") {
      ++heatmaps;
      auto expr = string_at((*panel_targets)[0], "expr");
      CAF_CHECK_NOT_EQUAL(expr.find("by (layer, expert_id)"), std::string::npos);
      CAF_CHECK_NOT_EQUAL(expr.find("voltinfer_expert_rows_total"),
                          std::string::npos);
    }
  }
  CAF_CHECK_EQUAL(rows, expected_rows);
  CAF_CHECK_EQUAL(heatmaps, 1u);
  CAF_CHECK_GREATER(targets, 20u);
  std::string all_exprs;
  for (const auto& q : dashboard_queries(dash))
    all_exprs += q.expr + "\n";
  for (auto quantile : {"0.5", "0.9", "0.99"})
    CAF_CHECK_NOT_EQUAL(
      all_exprs.find(std::string{"histogram_quantile("} + quantile
                     + ", sum by (le) (rate(voltinfer_request_latency_seconds_bucket"),
      std::string::npos);
  for (const auto& name : not_yet_exported)
    if (all_exprs.find(name) == std::string::npos)
      CAF_ERROR(name << " is listed as not yet exported but unused");
}

CAF_TEST(every dashboard query returns data from prometheus scraping a loaded cluster) {
  auto dash = load_dashboard();
  temp_dir dir;
  // A router and a worker: expert utilisation is counted by expert actors,
  // and failover, live workers and peer traffic need a remote expert host.
  metered_cluster cluster{dir};
  CAF_REQUIRE(cluster.wait_ready());
  auto r = cluster.router_port;
  // One wrong-protocol connection, so that voltinfer_rejected_connections_total
  // has a series for its panel.
  tcp_exchange(r, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  prometheus_server prom{dir,
                         {"127.0.0.1:" + std::to_string(cluster.router_metrics),
                          "127.0.0.1:" + std::to_string(cluster.worker_metrics)},
                         {monitoring_file("alerts.yml")}};
  if (!prom.ready())
    CAF_FAIL("prometheus did not start (run scripts/setup.sh): " << prom.log());
  client_load load{r, 2};
  // Rates need a few scrapes of the loaded nodes; on a busy machine the first
  // requests take longer, so ask again until every query answers (or 45 s).
  query_report report;
  report.problems = {"Prometheus did not scrape both nodes 3 times"};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{45};
  while (!report.problems.empty()
         && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::seconds{1});
    if (scalar(prom, "min(count_over_time(up{job=\"volt\"}[1m]))") < 3)
      continue;
    report = ask_queries(prom, dash);
    auto rules = rule_problems(prom);
    report.problems.insert(report.problems.end(), rules.begin(), rules.end());
  }
  for (const auto& problem : report.problems)
    CAF_ERROR(problem);
  CAF_MESSAGE(report.with_data << " queries returned data, " << report.parse_only
                               << " over metrics not yet exported parsed");
  CAF_CHECK_EQUAL(report.with_data + report.parse_only,
                  dashboard_queries(dash).size());
  CAF_CHECK_EQUAL(scalar(prom, "sum(up{job=\"volt\"})"), 2.0);
  auto stored = stored_names(prom);
  for (const auto& name : always_exported)
    CAF_CHECK_EQUAL(stored.count(name), 1u);
  for (const auto& name : not_yet_exported)
    if (stored.count(name) != 0)
      CAF_MESSAGE(name << " is exported now and was checked like the others: "
                       "remove it from not_yet_exported");
  load.stop();
  CAF_CHECK_GREATER(load.succeeded(), 0);
  CAF_CHECK_EQUAL(load.failed(), 0);
  if (load.failed() != 0)
    CAF_MESSAGE("last failed client: " << load.last_error());
}
