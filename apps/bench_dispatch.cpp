// `volt-node bench dispatch`: the round trip of one layer's expert batch to an
// expert actor, in this process (what a standalone node pays) and on a worker
// node over the middleman (what a router pays per hosting node and layer).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "actors/expert.hpp"
#include "apps/cli_args.hpp"
#include "apps/commands.hpp"
#include "apps/link_security.hpp"
#include "base/error.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/io/middleman.hpp"
#include "caf/io/middleman_actor.hpp"
#include "caf/scoped_actor.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "config/endpoint.hpp"
#include "model/checkpoint.hpp"
#include "model/json.hpp"
#include "net/actor_system_setup.hpp"

namespace volt {

namespace {

const std::vector<flag_spec> dispatch_flags = {
  {"model", true, "checkpoint folder (sets the hidden size; local baseline)"},
  {"connect", true, "HOST:PORT of a worker to measure over TCP"},
  {"rows", true,
   "token rows per batch, comma-separated (default 2,16,128; a decode step "
   "of one token sends top-k rows)"},
  {"iters", true, "timed round trips per row count (default 2000)"},
  {"warmup", true, "untimed round trips first (default 100)"},
  {"json", false, "print one JSON object instead of a table"},
  {"help", false, "print this help"},
};

/// With the flags of a client's TLS files.
const std::vector<flag_spec> all_dispatch_flags
  = with_flags(dispatch_flags, client_tls_flags());

struct percentiles {
  double p50 = 0, p90 = 0, p99 = 0;
};

percentiles summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    return us[std::min(us.size() - 1, static_cast<size_t>(q * us.size()))];
  };
  return {at(0.5), at(0.9), at(0.99)};
}

/// Times `iters` round trips of a `rows`-row batch of layer 0 for the first
/// hosted experts.
caf::expected<percentiles>
time_round_trips(caf::actor_system& sys, const expert_actor& target,
                 const std::vector<uint32_t>& hosted, int64_t hidden,
                 int64_t rows, int64_t k, int warmup, int iters) {
  expert_batch batch;
  batch.layer = 0;
  auto n_experts = std::min<int64_t>(k, static_cast<int64_t>(hosted.size()));
  for (int64_t i = 0; i < n_experts; ++i) {
    batch.expert_ids.push_back(hosted[static_cast<size_t>(i)]);
    batch.row_counts.push_back(
      static_cast<uint32_t>(rows / n_experts + (i < rows % n_experts)));
  }
  std::mt19937 gen{42};
  std::uniform_real_distribution<float> dist{-1.0f, 1.0f};
  std::vector<float> x(static_cast<size_t>(rows * hidden));
  for (auto& v : x)
    v = dist(gen);
  batch.rows = pack_f32(x.data(), {rows, hidden});
  caf::scoped_actor self{sys};
  std::vector<double> us;
  caf::error failure;
  for (int i = 0; i < warmup + iters && !failure; ++i) {
    auto start = std::chrono::steady_clock::now();
    self->request(target, std::chrono::seconds{10}, batch)
      .receive(
        [&](const wire_tensor&) {
          if (i >= warmup)
            us.push_back(std::chrono::duration<double, std::micro>(
                           std::chrono::steady_clock::now() - start)
                           .count());
        },
        [&](caf::error& err) { failure = std::move(err); });
  }
  if (failure)
    return failure;
  return summarize(std::move(us));
}

caf::expected<std::pair<expert_actor, std::vector<uint32_t>>>
connect_worker(caf::actor_system& sys, const endpoint& where) {
  caf::scoped_actor self{sys};
  caf::expected<std::pair<expert_actor, std::vector<uint32_t>>> result{
    caf::error{}};
  self
    ->request(link_manager(sys), std::chrono::seconds{10}, caf::connect_atom_v,
              where.host, where.port)
    .receive(
      [&](const caf::node_id&, caf::strong_actor_ptr& ptr,
          const std::set<std::string>& ifs) {
        if (!ptr || ifs != sys.message_types<expert_actor>()) {
          result = make_volt_error(volt_errc::invalid_config,
                                   "--connect: no Volt expert actor there");
          return;
        }
        auto handle = caf::actor_cast<expert_actor>(std::move(ptr));
        self->request(handle, std::chrono::seconds{10}, hosted_atom_v)
          .receive(
            [&](expert_hello& hello) {
              result = std::make_pair(handle, std::move(hello.experts));
            },
            [&](caf::error& err) { result = std::move(err); });
      },
      [&](caf::error& err) {
        result = make_volt_error(
          volt_errc::invalid_config,
          "--connect: "
            + describe_link_failure(err, sys.has_openssl_manager()));
      });
  return result;
}

} // namespace

int run_bench_dispatch(const std::vector<std::string>& raw_args) {
  auto args = cli_args::parse(raw_args, all_dispatch_flags);
  if (!args)
    return report_error(args.error());
  if (args->has("help") || !args->has("model")) {
    std::printf("usage: volt-node bench dispatch --model DIR [--connect "
                "HOST:PORT] [flags]\n%s",
                render_flags(all_dispatch_flags).c_str());
    return args->has("help") ? 0 : exit_bad_input;
  }
  auto ckpt = checkpoint::open(args->get("model"));
  if (!ckpt)
    return report_error(ckpt.error());
  auto rows_list = args->has("rows") ? args->get_int_list("rows", 1, 65536)
                                     : std::vector<int64_t>{2, 16, 128};
  auto iters = args->get_int("iters", 2000, 1, 10000000);
  auto warmup = args->get_int("warmup", 100, 0, 1000000);
  for (const auto* e : {&iters, &warmup})
    if (!*e)
      return report_error(e->error());
  if (!rows_list)
    return report_error(rows_list.error());
  auto tls = client_link_tls(*args, process_environment());
  if (!tls)
    return report_error(tls.error());
  caf::actor_system_config cfg;
  configure_actor_system(cfg, std::chrono::seconds{30},
                         *tls ? &**tls : nullptr);
  caf::actor_system sys{cfg};
  const auto& mc = ckpt->config();
  std::vector<uint32_t> all;
  for (int64_t e = 0; e < mc.num_local_experts; ++e)
    all.push_back(static_cast<uint32_t>(e));
  auto weights = expert_weights::load(*ckpt, all);
  if (!weights)
    return report_error(weights.error());
  struct target {
    std::string name;
    expert_actor handle;
    std::vector<uint32_t> hosted;
  };
  std::vector<target> targets{{"in-process", sys.spawn(expert, *weights), all}};
  if (args->has("connect")) {
    auto where = parse_endpoint(args->get("connect"));
    if (!where)
      return report_error(make_volt_error(volt_errc::invalid_config,
                                          "--connect: expected HOST:PORT"));
    auto remote = connect_worker(sys, *where);
    if (!remote)
      return report_error(remote.error());
    targets.push_back(
      {"tcp " + args->get("connect"), remote->first, remote->second});
  }
  bool as_json = args->has("json");
  // Collected and printed at the end, so an error midway leaves no half
  // object on stdout.
  auto rows_json = json::value::array();
  if (!as_json)
    std::printf("%-24s %6s %12s %10s %10s %10s\n", "target", "rows",
                "bytes/dir", "p50 us", "p90 us", "p99 us");
  for (const auto& t : targets)
    for (auto rows : *rows_list) {
      auto p = time_round_trips(sys, t.handle, t.hosted, mc.hidden_size, rows,
                                mc.num_experts_per_tok, *warmup, *iters);
      if (!p)
        return report_error(p.error());
      auto bytes = rows * mc.hidden_size * 4;
      if (as_json)
        rows_json.push_back({{"target", t.name},
                             {"rows", rows},
                             {"bytes_per_direction", bytes},
                             {"p50_us", json::rounded(p->p50, 2)},
                             {"p90_us", json::rounded(p->p90, 2)},
                             {"p99_us", json::rounded(p->p99, 2)}});
      else
        std::printf("%-24s %6lld %12lld %10.1f %10.1f %10.1f\n", t.name.c_str(),
                    static_cast<long long>(rows), static_cast<long long>(bytes),
                    p->p50, p->p90, p->p99);
    }
  if (as_json) {
    json::value out = {{"hidden", mc.hidden_size}, {"results", rows_json}};
    std::printf("%s\n", json::dump(out).c_str());
  }
  for (auto& t : targets)
    if (t.name == "in-process")
      caf::anon_send_exit(t.handle, caf::exit_reason::user_shutdown);
  return 0;
}

} // namespace volt
