#pragma once

#include <string>
#include <vector>

#include "caf/error.hpp"

namespace volt {

/// `volt-node generate ...`: one generation on an in-process standalone node.
int run_generate_command(const std::vector<std::string>& args);

/// `volt-node bench moe-layer ...`: times one MoE block on random weights.
int run_bench_command(const std::vector<std::string>& args);

/// `volt-node bench dispatch ...`: round trip of one layer's expert batch,
/// in-process and to a worker over TCP.
int run_bench_dispatch(const std::vector<std::string>& args);

/// `volt-node bench serve ...`: throughput and per-token latency of a
/// standalone node under concurrent requests.
int run_bench_serve(const std::vector<std::string>& args);

/// `volt-node bench model ...`: load time, memory, prefill and decode speed
/// of a whole model against its floor.
int run_bench_model(const std::vector<std::string>& args);

/// `volt-node bench http ...`: time to first token and per-token latency of
/// a streamed generation over the HTTP API against the CAF client, on one
/// running node.
int run_bench_http(const std::vector<std::string>& args);

/// `volt-node bench prefetch ...`: recall and precision of the prefetch
/// predictors over a text, per layer, against the router's choices.
int run_bench_prefetch(const std::vector<std::string>& args);
/// `volt-node bench link ...`: round trip and throughput of a node link over
/// loopback, plaintext and (given TLS files) mutual TLS.
int run_bench_link(const std::vector<std::string>& args);
/// `volt-node shell HOST:PORT [--command CMD]`: inspects and steers a
/// running router or standalone node, interactively or one command at a
/// time; exit status 0, or 2 with a one-line error.
int run_shell_command(const std::vector<std::string>& args);

/// `volt-node --config FILE.toml`: runs a node in the role its configuration
/// names until SIGINT or SIGTERM.
int run_node_command(const std::vector<std::string>& args);

/// Prints `err` as one line "volt-node: <what>" to stderr and returns the exit
/// code for it: 2 for bad input (config, checkpoint, flags, requests), 1
/// otherwise.
int report_error(const caf::error& err);

} // namespace volt
