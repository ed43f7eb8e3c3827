// `volt-node bench link`: what a node link costs over loopback, plaintext
// against mutual TLS. Byte payloads, as node links carry expert rows, go to an
// echo actor published the way a node publishes (CAF's middleman or its
// OpenSSL module on loopback, behind a port guard) and come back; the client
// is a second actor system in this process, connected as a router connects to
// a worker.

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>

#include "actors/type_ids.hpp"
#include "apps/bench_stats.hpp"
#include "apps/cli_args.hpp"
#include "apps/commands.hpp"
#include "apps/link_security.hpp"
#include "base/error.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/scoped_actor.hpp"
#include "model/json.hpp"
#include "net/actor_system_setup.hpp"
#include "net/port_guard.hpp"
#include "net/wire_tensor.hpp"

namespace volt {

namespace {

const std::vector<flag_spec> link_flags = with_flags(
  {
    {"sizes", true,
     "payload bytes per message, comma-separated (default "
     "512,4096,65536,1048576,4194304)"},
    {"iters", true,
     "timed round trips per size, fewer for large sizes (default 2000)"},
    {"window", true,
     "messages in flight for the throughput column (default 8)"},
    {"json", false, "print one JSON object instead of a table"},
    {"help", false, "print this help"},
  },
  client_tls_flags());

struct size_result {
  int64_t bytes = 0;
  double p50_us = 0;
  double p90_us = 0;
  /// Payload megabytes (10^6) per second each way with `window` in flight.
  double mb_per_s = 0;
  /// CPU time of this process (both ends and the port guard: all of a
  /// link's work) per round trip while `window` were in flight. Unlike the
  /// times above, a busy machine barely moves it.
  double cpu_us = 0;
};

/// User plus system CPU time of this process so far, in microseconds.
double process_cpu_us() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto us = [](const timeval& t) { return t.tv_sec * 1e6 + t.tv_usec; };
  return us(usage.ru_utime) + us(usage.ru_stime);
}

/// At most this many payload bytes per size and measurement, so that large
/// sizes take seconds, not minutes, on two cores.
constexpr int64_t byte_budget = int64_t{512} << 20;

caf::expected<size_result> measure_size(caf::actor_system& sys,
                                        const caf::actor& echo, int64_t bytes,
                                        int64_t iters, int64_t window) {
  wire_tensor payload;
  payload.type = static_cast<uint8_t>(dtype::f32);
  payload.shape = {bytes / 4};
  payload.bytes.resize(static_cast<size_t>(bytes / 4 * 4));
  for (size_t i = 0; i < payload.bytes.size(); ++i)
    payload.bytes[i] = static_cast<uint8_t>(i * 131 + 7);
  auto n = std::clamp<int64_t>(byte_budget / std::max<int64_t>(bytes, 1), 20,
                               iters);
  caf::scoped_actor self{sys};
  caf::error failure;
  auto on_error = [&](caf::error& err) { failure = std::move(err); };
  auto timeout = std::chrono::seconds{60};
  for (int i = 0; i < 10 && !failure; ++i) // warm-up
    self->request(echo, timeout, payload)
      .receive([](wire_tensor&) {}, on_error);
  std::vector<double> us;
  for (int64_t i = 0; i < n && !failure; ++i) {
    auto start = std::chrono::steady_clock::now();
    self->request(echo, timeout, payload)
      .receive(
        [&](wire_tensor& back) {
          if (back.bytes.size() != payload.bytes.size())
            failure = make_volt_error(volt_errc::internal,
                                      "the echo came back with another size");
          us.push_back(std::chrono::duration<double, std::micro>(
                         std::chrono::steady_clock::now() - start)
                         .count());
        },
        on_error);
  }
  if (failure)
    return failure;
  size_result result;
  result.bytes = static_cast<int64_t>(payload.bytes.size());
  result.p50_us = percentile(us, 0.5);
  result.p90_us = percentile(us, 0.9);
  // Throughput: keep `window` requests in flight, answered in order.
  using handle = decltype(self->request(echo, timeout, payload));
  std::deque<handle> in_flight;
  auto start = std::chrono::steady_clock::now();
  auto cpu_start = process_cpu_us();
  int64_t sent = 0;
  int64_t done = 0;
  while (done < n && !failure) {
    while (sent < n && static_cast<int64_t>(in_flight.size()) < window) {
      in_flight.push_back(self->request(echo, timeout, payload));
      ++sent;
    }
    in_flight.front().receive([&](wire_tensor&) { ++done; }, on_error);
    in_flight.pop_front();
  }
  if (failure)
    return failure;
  auto seconds
    = std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
        .count();
  result.mb_per_s = static_cast<double>(result.bytes) * static_cast<double>(n)
                    / seconds / 1e6;
  result.cpu_us = (process_cpu_us() - cpu_start) / static_cast<double>(n);
  return result;
}

/// Publishes an echo actor behind a port guard in one actor system and
/// measures every size from another, both with `tls` or both without.
caf::expected<std::vector<size_result>>
measure_link(const tls_files* tls, const std::vector<int64_t>& sizes,
             int64_t iters, int64_t window) {
  // Declared first: it outlives both actor systems, as on a node.
  std::unique_ptr<port_guard> guard;
  caf::actor_system_config server_cfg;
  configure_actor_system(server_cfg, std::chrono::milliseconds{0}, tls);
  caf::actor_system server{server_cfg};
  auto echo = server.spawn([]() -> caf::behavior {
    return {[](wire_tensor& t) { return std::move(t); }};
  });
  port_guard::options opts;
  opts.host = "127.0.0.1";
  opts.port = 0;
  opts.tls = tls != nullptr;
  auto listening = port_guard::listen(std::move(opts));
  if (!listening)
    return std::move(listening.error());
  guard = std::move(*listening);
  auto backend = publish_link(echo, 0, "127.0.0.1");
  if (!backend)
    return std::move(backend.error());
  guard->serve(*backend);
  std::vector<size_result> results;
  {
    caf::actor_system_config client_cfg;
    configure_actor_system(client_cfg, std::chrono::milliseconds{0}, tls);
    caf::actor_system client{client_cfg};
    auto remote = remote_link<caf::actor>(client, "127.0.0.1", guard->port());
    if (!remote)
      return std::move(remote.error());
    for (auto bytes : sizes) {
      auto r = measure_size(client, *remote, bytes, iters, window);
      if (!r)
        return std::move(r.error());
      results.push_back(*r);
    }
  }
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  return results;
}

} // namespace

int run_bench_link(const std::vector<std::string>& raw_args) {
  auto args = cli_args::parse(raw_args, link_flags);
  if (!args)
    return report_error(args.error());
  if (args->has("help")) {
    std::printf("usage: volt-node bench link [--tls-cert F --tls-key F "
                "--tls-ca F] [flags]\n"
                "Plaintext always; mutual TLS too when the files are given "
                "(flags or VOLT_SECURITY_TLS_*).\n%s",
                render_flags(link_flags).c_str());
    return 0;
  }
  auto sizes = args->has("sizes")
                 ? args->get_int_list("sizes", 4, int64_t{256} << 20)
                 : std::vector<int64_t>{512, 4096, 65536, 1048576, 4194304};
  auto iters = args->get_int("iters", 2000, 1, 10000000);
  auto window = args->get_int("window", 8, 1, 1024);
  if (!sizes)
    return report_error(sizes.error());
  for (const auto* x : {&iters, &window})
    if (!*x)
      return report_error(x->error());
  auto tls = client_link_tls(*args, process_environment());
  if (!tls)
    return report_error(tls.error());
  std::vector<std::pair<std::string, const tls_files*>> modes{
    {"plaintext", nullptr}};
  if (*tls)
    modes.emplace_back("tls", &**tls);
  bool as_json = args->has("json");
  auto rows = json::value::array();
  if (!as_json)
    std::printf("%-10s %10s %10s %10s %14s %12s\n", "link", "bytes", "p50 us",
                "p90 us", "MB/s each way", "cpu us/msg");
  for (const auto& [name, files] : modes) {
    auto results = measure_link(files, *sizes, *iters, *window);
    if (!results)
      return report_error(results.error());
    for (const auto& r : *results) {
      if (as_json)
        rows.push_back({{"link", name},
                        {"bytes", r.bytes},
                        {"p50_us", json::rounded(r.p50_us, 1)},
                        {"p90_us", json::rounded(r.p90_us, 1)},
                        {"mb_per_s", json::rounded(r.mb_per_s, 1)},
                        {"cpu_us", json::rounded(r.cpu_us, 1)}});
      else
        std::printf("%-10s %10lld %10.1f %10.1f %14.1f %12.1f\n", name.c_str(),
                    static_cast<long long>(r.bytes), r.p50_us, r.p90_us,
                    r.mb_per_s, r.cpu_us);
    }
  }
  if (as_json) {
    json::value out = {{"window", *window}, {"results", rows}};
    std::printf("%s\n", json::dump(out).c_str());
  }
  return 0;
}

} // namespace volt
