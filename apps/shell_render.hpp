#pragma once

// How `volt-node shell` shows a node_report: aligned tables and short
// summaries, one function per command.

#include <string>
#include <vector>

#include "actors/inspection_messages.hpp"

namespace volt {

/// Rows of cells as columns padded to their widest cell (two spaces apart;
/// the last column unpadded), one line per row.
std::string render_table(const std::vector<std::vector<std::string>>& rows);

/// Expert ids as ranges: "0-3, 6".
std::string render_expert_ranges(const std::vector<uint32_t>& ids);

/// `nodes`: the node asked (at `address`, where the shell connected) and its
/// workers: id, role, address, liveness, experts, load.
std::string render_nodes(const node_report& report,
                         const std::string& address);

/// `experts`: per expert its hosts, replicas, rows in flight, requests and
/// rows per second.
std::string render_experts(const node_report& report);

/// `queue`: queued and running work and the request counters.
std::string render_queue(const node_report& report);

/// `requests`: requests in flight with their age and tokens so far.
std::string render_requests(const node_report& report);

/// `kv`: the KV page pool and the prefix cache.
std::string render_kv(const node_report& report);

/// `metrics [prefix]`: the lines of Prometheus text whose metric name starts
/// with `prefix` (their # HELP and # TYPE lines too).
std::string filter_metrics(const std::string& text, const std::string& prefix);

} // namespace volt
