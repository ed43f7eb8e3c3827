// `volt-node bench http`: what the HTTP API adds to a streamed generation.
// One node, one request at a time, the same prompt ids, alternating between
// the CAF client path (a sink actor of this process streaming from the
// node's engine over the middleman) and a streamed /v1/completions over a
// plain socket; each times from sending the request to each token's arrival.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

#include "actors/stream_messages.hpp"
#include "actors/type_ids.hpp"
#include "apps/cli_args.hpp"
#include "apps/commands.hpp"
#include "apps/tcp_client.hpp"
#include "base/error.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/io/middleman.hpp"
#include "caf/scoped_actor.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "config/endpoint.hpp"
#include "net/actor_system_setup.hpp"

namespace volt {

namespace {

using clock_type = std::chrono::steady_clock;

const std::vector<flag_spec> http_bench_flags = {
  {"connect", true, "HOST:PORT of the node's CAF port ([network] port)"},
  {"http", true, "HOST:PORT of the same node's HTTP API ([http] port)"},
  {"prompt-ids", true, "prompt token ids (default: 13 ids of the text model)"},
  {"new-tokens", true, "tokens per request (default 128)"},
  {"runs", true, "timed requests per client (default 20, after 2 warm-ups)"},
  {"help", false, "print this help"},
};

/// When a request went out and when each of its tokens arrived.
struct timed_run {
  clock_type::time_point sent;
  std::vector<clock_type::time_point> tokens;
};

struct client_stats {
  std::vector<double> ttft_ms;
  std::vector<double> gap_ms;

  void add(const timed_run& run) {
    if (run.tokens.empty())
      return;
    auto ms = [](auto d) {
      return std::chrono::duration<double, std::milli>(d).count();
    };
    ttft_ms.push_back(ms(run.tokens.front() - run.sent));
    for (size_t i = 1; i < run.tokens.size(); ++i)
      gap_ms.push_back(ms(run.tokens[i] - run.tokens[i - 1]));
  }
};

double median(std::vector<double> xs) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  return xs[xs.size() / 2];
}

double mean(const std::vector<double>& xs) {
  return xs.empty() ? 0
                    : std::accumulate(xs.begin(), xs.end(), 0.0)
                        / static_cast<double>(xs.size());
}

/// One streamed request through the engine's CAF interface.
timed_run caf_run(caf::actor_system& sys, const engine_actor& engine,
                  const generate_request& req) {
  auto run = std::make_shared<timed_run>();
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  auto sink = sys.spawn([run, done](stream_sink_actor::pointer self)
                          -> stream_sink_actor::behavior_type {
    return {
      [run](const generate_chunk& c) {
        auto now = clock_type::now();
        for (size_t i = 0; i < c.tokens.size(); ++i)
          run->tokens.push_back(now);
      },
      [self, done](const generate_end&) {
        done->set_value();
        self->quit();
      },
    };
  });
  caf::scoped_actor self{sys};
  run->sent = clock_type::now();
  self->request(engine, caf::infinite, stream_atom_v, req, sink)
    .receive([](uint64_t) {},
             [&](caf::error& err) {
               std::fprintf(stderr, "CAF request failed: %s\n",
                            describe(err).c_str());
               done->set_value();
             });
  finished.wait();
  return std::move(*run);
}

/// One streamed /v1/completions on a connection opened before the clock
/// starts: every event but the closing [DONE] carries one token here.
timed_run http_run(const endpoint& where, const generate_request& req) {
  std::string ids;
  for (auto id : req.prompt)
    ids += (ids.empty() ? "" : ",") + std::to_string(id);
  auto body = "{\"prompt\": [" + ids
              + "], \"max_tokens\": " + std::to_string(req.max_new_tokens)
              + ", \"temperature\": 0, \"ignore_eos\": true, \"stream\": "
                "true}";
  auto request = "POST /v1/completions HTTP/1.1\r\nHost: " + where.host
                 + "\r\nContent-Type: application/json\r\nContent-Length: "
                 + std::to_string(body.size()) + "\r\n\r\n" + body;
  timed_run run;
  int fd = open_socket(where);
  if (fd < 0)
    return run;
  run.sent = clock_type::now();
  (void)!send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string tail;
  char buf[65536];
  for (;;) {
    auto n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    auto now = clock_type::now();
    // Keep a few bytes of the last read: a marker may span two reads.
    auto text = tail + std::string{buf, static_cast<size_t>(n)};
    for (auto at = text.find("data: {"); at != std::string::npos;
         at = text.find("data: {", at + 1))
      if (at + 7 > tail.size())
        run.tokens.push_back(now);
    if (text.find("data: [DONE]") != std::string::npos)
      break;
    tail = text.substr(text.size() - std::min<size_t>(text.size(), 8));
  }
  close(fd);
  // The last event with a choice only says why the choice ended.
  return run;
}

void print_stats(const char* name, const client_stats& s) {
  std::printf("%-5s %10.3f %12.4f %12.4f %12.4f %8zu\n", name,
              median(s.ttft_ms), median(s.gap_ms), mean(s.gap_ms),
              [&] {
                auto xs = s.gap_ms;
                std::sort(xs.begin(), xs.end());
                return xs.empty() ? 0.0 : xs[xs.size() * 9 / 10];
              }(),
              s.ttft_ms.size());
}

} // namespace

int run_bench_http(const std::vector<std::string>& raw_args) {
  auto args = cli_args::parse(raw_args, http_bench_flags);
  if (!args)
    return report_error(args.error());
  if (args->has("help") || !args->has("connect") || !args->has("http")) {
    std::printf("usage: volt-node bench http --connect HOST:PORT --http "
                "HOST:PORT [flags]\n%s",
                render_flags(http_bench_flags).c_str());
    return args->has("help") ? 0 : exit_bad_input;
  }
  auto bad = [](const std::string& what) {
    return report_error(make_volt_error(volt_errc::invalid_config, what));
  };
  auto caf_at = parse_endpoint(args->get("connect"));
  auto http_at = parse_endpoint(args->get("http"));
  if (!caf_at || !http_at)
    return bad("--connect and --http: expected HOST:PORT");
  generate_request req;
  req.prompt = {1, 440, 287, 809, 832, 268, 683, 813, 809, 824, 807, 300, 13};
  if (args->has("prompt-ids")) {
    auto ids = args->get_int_list("prompt-ids", 0,
                                  std::numeric_limits<int32_t>::max());
    if (!ids)
      return report_error(ids.error());
    req.prompt.assign(ids->begin(), ids->end());
  }
  auto tokens = args->get_int("new-tokens", 128, 2, 1 << 20);
  auto runs = args->get_int("runs", 20, 1, 100000);
  if (!tokens)
    return report_error(tokens.error());
  if (!runs)
    return report_error(runs.error());
  req.max_new_tokens = static_cast<uint32_t>(*tokens);
  req.ignore_eos = true;
  caf::actor_system_config cfg;
  configure_actor_system(cfg, std::chrono::seconds{30});
  caf::actor_system sys{cfg};
  auto engine = sys.middleman().remote_actor<engine_actor>(caf_at->host,
                                                           caf_at->port);
  if (!engine)
    return bad("--connect: " + describe(engine.error()));
  client_stats caf_stats, http_stats;
  for (int64_t i = 0; i < *runs + 2; ++i) {
    auto c = caf_run(sys, *engine, req);
    auto h = http_run(*http_at, req);
    if (i < 2)
      continue; // warm-up
    caf_stats.add(c);
    http_stats.add(h);
  }
  std::printf("%-5s %10s %12s %12s %12s %8s\n", "path", "ttft_ms",
              "token_ms_p50", "token_ms_avg", "token_ms_p90", "runs");
  print_stats("caf", caf_stats);
  print_stats("http", http_stats);
  std::printf("http/caf: time to first token %.3fx, per token %.3fx (mean), "
              "%.3fx (median)\n",
              median(http_stats.ttft_ms) / median(caf_stats.ttft_ms),
              mean(http_stats.gap_ms) / mean(caf_stats.gap_ms),
              median(http_stats.gap_ms) / median(caf_stats.gap_ms));
  return 0;
}

} // namespace volt
