#include "apps/shell_render.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace volt {

namespace {

std::string fixed(double x, int digits = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, x);
  return buf;
}

std::string or_dash(const std::string& x) {
  return x.empty() ? "-" : x;
}

std::string join(const std::vector<std::string>& xs) {
  std::string out;
  for (const auto& x : xs)
    out += (out.empty() ? "" : ", ") + x;
  return out;
}

/// A duration for people: "850ms", "12.3s", "4m05s".
std::string age(double seconds) {
  if (seconds < 1)
    return std::to_string(static_cast<int>(seconds * 1000)) + "ms";
  if (seconds < 60)
    return fixed(seconds) + "s";
  auto whole = static_cast<long>(seconds);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%ldm%02lds", whole / 60, whole % 60);
  return buf;
}

} // namespace

std::string render_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) {
      if (widths.size() <= c)
        widths.push_back(0);
      widths[c] = std::max(widths[c], row[c].size());
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size())
        line += std::string(widths[c] - row[c].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string render_expert_ranges(const std::vector<uint32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1)
      ++j;
    out += (out.empty() ? "" : ", ") + std::to_string(ids[i]);
    if (j > i)
      out += "-" + std::to_string(ids[j]);
    i = j + 1;
  }
  return out;
}

std::string render_nodes(const node_report& report,
                         const std::string& address) {
  std::vector<std::vector<std::string>> rows{
    {"ID", "ROLE", "ADDRESS", "LIVENESS", "EXPERTS", "LOAD", "DETAIL"}};
  for (size_t i = 0; i < report.nodes.size(); ++i) {
    const auto& n = report.nodes[i];
    std::string load;
    if (i == 0) {
      const auto& q = report.queue;
      load = std::to_string(q.running) + " sequences running, "
             + std::to_string(q.queued + q.preempted) + " waiting";
    } else if (n.liveness == "live" || n.liveness == "draining") {
      load = std::to_string(n.rows_in_flight) + " rows in flight, "
             + fixed(n.rows_per_second) + " rows/s, "
             + std::to_string(n.rows_sent) + " rows sent";
    } else {
      load = "-";
    }
    rows.push_back({or_dash(n.id), n.role,
                    i == 0 && n.address.empty() ? address : n.address,
                    n.liveness, or_dash(render_expert_ranges(n.experts)),
                    load, or_dash(n.detail)});
  }
  return render_table(rows);
}

std::string render_experts(const node_report& report) {
  std::vector<std::vector<std::string>> rows{{"EXPERT", "HOSTS", "REPLICAS",
                                              "ROWS IN FLIGHT", "REQUESTS/S",
                                              "ROWS/S"}};
  for (const auto& e : report.experts) {
    auto replicas = e.hosts.size() + (e.in_process ? 1 : 0);
    std::string hosts = join(e.hosts);
    if (e.in_process)
      hosts = "in-process" + (hosts.empty() ? "" : ", " + hosts);
    if (hosts.empty())
      hosts = "none (requests wait for a host)";
    // Rows computed inside the step never leave it, so nothing counts them.
    bool counted = !e.in_process;
    rows.push_back({std::to_string(e.expert), hosts, std::to_string(replicas),
                    counted ? std::to_string(e.rows_in_flight) : "-",
                    counted ? fixed(e.requests_per_second) : "-",
                    counted ? fixed(e.rows_per_second) : "-"});
  }
  return render_table(rows)
         + "(rates over the last 10 s; rows in flight: at hosts now)\n";
}

std::string render_queue(const node_report& report) {
  const auto& q = report.queue;
  std::ostringstream out;
  out << "queued:      " << q.queued << " requests (at most " << q.max_queue
      << ")\n"
      << "running:     " << q.running << " sequences (at most " << q.max_batch
      << " per step)" << (q.step_running ? ", a step is computing" : "")
      << "\n"
      << "preempted:   " << q.preempted << " sequences waiting to resume\n"
      << "finished:    " << q.completed << " completed, " << q.cancelled
      << " cancelled, " << q.failed << " failed, " << q.refused
      << " refused; " << q.preemptions << " preemptions\n"
      << "missing:     "
      << (q.missing_experts.empty()
            ? std::string{"none (every expert has a live host)"}
            : "experts " + render_expert_ranges(q.missing_experts)
                + " have no live host")
      << "\n";
  return out.str();
}

std::string render_requests(const node_report& report) {
  if (report.requests.empty())
    return "no request in flight\n";
  std::vector<std::vector<std::string>> rows{{"ID", "STATE", "AGE", "PROMPT",
                                              "TOKENS", "MAX NEW",
                                              "SEQUENCES", "STREAMED"}};
  for (const auto& r : report.requests)
    rows.push_back({std::to_string(r.id), r.state, age(r.age_seconds),
                    std::to_string(r.prompt_tokens),
                    std::to_string(r.generated_tokens),
                    std::to_string(r.max_new_tokens),
                    std::to_string(r.sequences), r.streamed ? "yes" : "no"});
  return render_table(rows);
}

std::string render_kv(const node_report& report) {
  const auto& kv = report.kv.pool;
  std::ostringstream out;
  auto percent = [&](int64_t n) {
    return kv.pages_total > 0
             ? " (" + fixed(100.0 * static_cast<double>(n)
                              / static_cast<double>(kv.pages_total))
                 + "%)"
             : std::string{};
  };
  out << "pool:          " << kv.pages_total << " pages of " << kv.page_size
      << " tokens on " << report.kv.where << "\n"
      << "used:          " << kv.pages_used << percent(kv.pages_used)
      << ", shared by several sequences: " << kv.pages_shared << "\n"
      << "free:          " << kv.pages_free << percent(kv.pages_free)
      << ", and " << kv.pages_evictable
      << " cached pages no sequence uses (evicted when needed)\n"
      << "prefix cache:  " << kv.pages_cached << " pages; " << kv.prefix_hits
      << " hits in " << kv.prefix_lookups << " lookups, "
      << kv.prefix_hit_tokens << " prompt tokens reused; " << kv.evictions
      << " evictions\n"
      << "copy-on-write: " << kv.copy_on_write << " pages copied\n";
  return out.str();
}

std::string filter_metrics(const std::string& text,
                           const std::string& prefix) {
  std::istringstream in{text};
  std::string out;
  std::string line;
  while (std::getline(in, line)) {
    auto name = line;
    // "# HELP name ..." and "# TYPE name ..." belong to `name`.
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0)
      name = line.substr(7);
    else if (line.rfind('#', 0) == 0)
      continue;
    if (!line.empty() && name.rfind(prefix, 0) == 0)
      out += line + "\n";
  }
  return out;
}

} // namespace volt
