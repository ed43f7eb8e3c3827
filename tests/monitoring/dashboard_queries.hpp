#pragma once

// Reads the PromQL out of a Grafana dashboard and expands Grafana's variables
// the way Grafana would before sending a query to Prometheus.

#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "model/json.hpp"

namespace volt::test {

/// One PromQL expression of a dashboard: a panel target's `expr`, or the
/// metric a template variable's label_values() reads.
struct dashboard_query {
  std::string where; // "panel 'title' A" or "variable node"
  std::string expr;
};

/// Every panel of the dashboard, the panels of collapsed rows included.
inline std::vector<const json::value*> dashboard_panels(const json::value& dash) {
  std::vector<const json::value*> out;
  auto top = json::find(dash, "panels");
  if (top == nullptr || !top->is_array())
    return out;
  for (const auto& panel : *top) {
    out.push_back(&panel);
    if (auto nested = json::find(panel, "panels"); nested && nested->is_array())
      for (const auto& inner : *nested)
        out.push_back(&inner);
  }
  return out;
}

/// The dashboard's template variables.
inline std::vector<const json::value*> dashboard_variables(const json::value& dash) {
  std::vector<const json::value*> out;
  auto templating = json::find(dash, "templating");
  auto list = templating ? json::find(*templating, "list") : nullptr;
  if (list != nullptr && list->is_array())
    for (const auto& var : *list)
      out.push_back(&var);
  return out;
}

/// The string member `key` of `x`, or "".
inline std::string string_at(const json::value& x, const char* key) {
  auto v = json::find(x, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string{};
}

/// Every query of the dashboard: panel targets, and for each query variable
/// `label_values(metric, label)` the metric itself.
inline std::vector<dashboard_query> dashboard_queries(const json::value& dash) {
  std::vector<dashboard_query> out;
  for (auto* panel : dashboard_panels(dash)) {
    auto targets = json::find(*panel, "targets");
    if (targets == nullptr || !targets->is_array())
      continue;
    for (const auto& target : *targets)
      out.push_back({"panel '" + string_at(*panel, "title") + "' "
                       + string_at(target, "refId"),
                     string_at(target, "expr")});
  }
  static const std::regex label_values{R"(^label_values\((.+),\s*\w+\)$)"};
  for (auto* var : dashboard_variables(dash)) {
    if (string_at(*var, "type") != "query")
      continue;
    auto query = json::find(*var, "query");
    auto text = query != nullptr && query->is_object()
                  ? string_at(*query, "query")
                  : string_at(*var, "query");
    std::smatch m;
    out.push_back({"variable " + string_at(*var, "name"),
                   std::regex_match(text, m, label_values) ? m[1].str() : text});
  }
  return out;
}

/// `expr` with every Grafana variable ($name, ${name}, ${name:format},
/// [[name]]) replaced from `values`; the names it found no value for go to
/// `unknown`, so that a test notices a variable it does not model.
inline std::string expand_variables(const std::string& expr,
                                    const std::map<std::string, std::string>& values,
                                    std::set<std::string>& unknown) {
  static const std::regex var{
    R"(\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\])"};
  std::string out;
  auto pos = expr.cbegin();
  for (std::sregex_iterator it{expr.begin(), expr.end(), var}, end; it != end;
       ++it) {
    const auto& m = *it;
    auto name = m[1].matched ? m[1].str() : m[2].matched ? m[2].str() : m[3].str();
    out.append(pos, m[0].first);
    if (auto found = values.find(name); found != values.end())
      out += found->second;
    else {
      unknown.insert(name);
      out += m[0].str();
    }
    pos = m[0].second;
  }
  out.append(pos, expr.cend());
  return out;
}

/// The Volt metric names (voltinfer_*) an expression reads.
inline std::set<std::string> metric_names(const std::string& expr) {
  static const std::regex name{R"(\bvoltinfer_[A-Za-z0-9_]+)"};
  std::set<std::string> out;
  for (std::sregex_iterator it{expr.begin(), expr.end(), name}, end; it != end;
       ++it)
    out.insert(it->str());
  return out;
}

} // namespace volt::test
