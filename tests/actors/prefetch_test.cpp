#define CAF_SUITE actors.prefetch

// The prefetch predictor in a running engine: it changes no token, scores
// every step, and its counts reach /metrics through the prefetch actor,
// which also keeps the totals behind its status line and drops malformed
// reports.

#include <chrono>
#include <mutex>
#include <thread>
#include <tuple>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "actors/expert.hpp"
#include "actors/prefetch.hpp"
#include "net/metrics.hpp"
#include "tests/engine_harness.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// The sum of every series of the counter `name` whose labels include
/// `label` = `value` (any, when `label` is empty).
double counter_sum(const node_metrics& metrics, const std::string& name,
                   const std::string& label = {},
                   const std::string& value = {}) {
  double sum = 0;
  for (const auto& family : metrics.registry()->Collect())
    if (family.name == name)
      for (const auto& metric : family.metric) {
        bool match = label.empty();
        for (const auto& l : metric.label)
          match |= l.name == label && l.value == value;
        if (match)
          sum += metric.counter.value;
      }
  return sum;
}

/// Waits (up to a minute, polling) until `metrics` counted `steps` prefetch
/// steps: reports reach the prefetch actor after the answer may have.
bool wait_for_steps(const node_metrics& metrics, double steps) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes{1};
  while (counter_sum(metrics, "voltinfer_prefetch_steps_total") < steps) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  return true;
}

std::string status_of(caf::actor_system& sys, const prefetch_actor& actor) {
  caf::scoped_actor self{sys};
  std::string status;
  self->request(actor, std::chrono::seconds{30}, status_atom_v)
    .receive([&](std::string& s) { status = std::move(s); },
             [&](caf::error& err) { CAF_FAIL(describe(err)); });
  return status;
}

/// The stage_next of every batch an expert host received, by layer.
struct hint_log {
  std::mutex mtx;
  std::vector<std::pair<uint32_t, std::vector<uint32_t>>> batches;
};

/// An expert host that notes each batch's hint, then lets the real CPU
/// expert actor `inner` answer it.
expert_actor::behavior_type noting_hints(expert_actor::pointer self,
                                         expert_actor inner,
                                         std::shared_ptr<hint_log> log) {
  return {
    [=](expert_batch& batch) {
      {
        std::lock_guard<std::mutex> guard{log->mtx};
        log->batches.emplace_back(batch.layer, batch.stage_next);
      }
      return self->delegate(inner, std::move(batch));
    },
    [=](hosted_atom) { return self->delegate(inner, hosted_atom_v); },
  };
}

/// A router's engine whose experts are on two hosts (0-3 and 4-7) that note
/// the hints they get; generates `req` and returns its tokens.
std::vector<int32_t> run_with_two_hosts(const checkpoint& ckpt,
                                        engine_options opts,
                                        const generate_request& req,
                                        std::shared_ptr<hint_log> low,
                                        std::shared_ptr<hint_log> high) {
  volt_system_config cfg;
  caf::actor_system sys{cfg};
  standalone_options options{opts};
  options.engine.role = "router";
  auto exec = make_executor(ckpt, options, false);
  CAF_REQUIRE(exec);
  std::vector<expert_host> hosts;
  for (auto [ids, log, name] :
       {std::tuple{std::vector<uint32_t>{0, 1, 2, 3}, low, "10.0.0.1:7001"},
        std::tuple{std::vector<uint32_t>{4, 5, 6, 7}, high, "10.0.0.2:7001"}}) {
    auto inner = sys.spawn(expert, *expert_weights::load(ckpt, ids));
    hosts.push_back({sys.spawn(noting_hints, inner, log), ids, name, 0, 0});
  }
  auto eng = spawn_engine(sys, *exec, std::move(hosts), options.engine);
  std::vector<int32_t> tokens;
  {
    caf::scoped_actor self{sys};
    self->request(eng, std::chrono::seconds{60}, generate_atom_v, req)
      .receive([&](generate_result& res) { tokens = res.new_tokens; },
               [&](caf::error& err) { CAF_FAIL(describe(err)); });
  }
  caf::anon_send_exit(eng, caf::exit_reason::user_shutdown);
  return tokens;
}

} // namespace

CAF_TEST(the router sends each host its predicted experts with its rows) {
  auto ckpt = open_fixture();
  const auto layers = static_cast<uint32_t>(ckpt.config().num_hidden_layers);
  auto req = request_for({1, 2, 3, 4, 5}, 12);
  auto plain_low = std::make_shared<hint_log>();
  auto plain_high = std::make_shared<hint_log>();
  auto plain = run_with_two_hosts(ckpt, {}, req, plain_low, plain_high);
  CAF_REQUIRE_EQUAL(plain.size(), 12u);
  // The predictor on, staging off: it only scores itself.
  engine_options opts;
  opts.prefetch = prefetch::predictor_options{};
  auto quiet_low = std::make_shared<hint_log>();
  auto quiet_high = std::make_shared<hint_log>();
  CAF_CHECK_EQUAL(run_with_two_hosts(ckpt, opts, req, quiet_low, quiet_high),
                  plain);
  opts.stage_on_hosts = true;
  auto low = std::make_shared<hint_log>();
  auto high = std::make_shared<hint_log>();
  CAF_CHECK_EQUAL(run_with_two_hosts(ckpt, opts, req, low, high), plain);
  // Without a predictor, or without staging, no batch carries a hint.
  for (const auto& log : {plain_low, plain_high, quiet_low, quiet_high})
    for (const auto& [layer, hint] : log->batches)
      CAF_CHECK(hint.empty());
  // With one: each host hears only of experts it hosts, never for a layer
  // past the last, and the predictor (which learns as the request runs)
  // names some.
  size_t hinted = 0;
  for (auto [log, first] : {std::pair{low, 0u}, std::pair{high, 4u}}) {
    CAF_CHECK(!log->batches.empty());
    for (const auto& [layer, hint] : log->batches) {
      if (layer + 1 == layers)
        CAF_CHECK(hint.empty());
      for (auto id : hint)
        CAF_CHECK(id >= first && id < first + 4);
      hinted += hint.empty() ? 0 : 1;
    }
  }
  CAF_CHECK_GREATER(hinted, 0u);
}

CAF_TEST(the predictor changes no token and reports every step) {
  auto ckpt = open_fixture();
  const auto layers = ckpt.config().num_hidden_layers;
  auto req = request_for({1, 2, 3, 4, 5}, 12);
  std::vector<int32_t> plain_tokens;
  {
    engine_harness plain{ckpt};
    auto res = plain.generate(req);
    CAF_REQUIRE(res);
    plain_tokens = res->new_tokens;
  }
  auto metrics = std::make_shared<node_metrics>("test");
  engine_options opts;
  opts.metrics = metrics;
  opts.prefetch = prefetch::predictor_options{};
  engine_harness node{ckpt, opts};
  auto res = node.generate(req);
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->new_tokens, plain_tokens);
  // One prefill step and one step per token after the first.
  const double steps = 12;
  CAF_REQUIRE(wait_for_steps(*metrics, steps));
  CAF_CHECK_EQUAL(counter_sum(*metrics, "voltinfer_prefetch_steps_total"),
                  steps);
  // Every layer routed at least top-k distinct experts in every step, and
  // the combination staged at most 2 x top-k of them.
  const auto k = ckpt.config().num_experts_per_tok;
  for (int64_t l = 0; l < layers; ++l) {
    auto layer = std::to_string(l);
    auto routed = counter_sum(*metrics,
                              "voltinfer_prefetch_routed_experts_total",
                              "layer", layer);
    auto staged = counter_sum(*metrics,
                              "voltinfer_prefetch_staged_experts_total",
                              "layer", layer);
    CAF_CHECK_GREATER_OR_EQUAL(routed, steps * static_cast<double>(k));
    CAF_CHECK_LESS_OR_EQUAL(staged, steps * 2 * static_cast<double>(k));
  }
  auto hits = counter_sum(*metrics, "voltinfer_prefetch_hit_experts_total",
                          "predictor", "cross_layer");
  auto predicted = counter_sum(*metrics,
                               "voltinfer_prefetch_predicted_experts_total",
                               "predictor", "cross_layer");
  CAF_CHECK_GREATER(hits, 0.0);
  CAF_CHECK_LESS_OR_EQUAL(hits, predicted);
  std::ostringstream text;
  prometheus::TextSerializer{}.Serialize(text, metrics->registry()->Collect());
  CAF_CHECK_NOT_EQUAL(text.str().find("voltinfer_prefetch_hit_experts_total{"
                                      "node=\"test\",layer=\"0\",predictor="
                                      "\"combined\"}"),
                      std::string::npos);
}

CAF_TEST(the prefetch actor keeps totals and drops malformed reports) {
  volt_system_config cfg;
  caf::actor_system sys{cfg};
  auto metrics = std::make_shared<node_metrics>("test");
  auto actor = sys.spawn(prefetch_tracker, int64_t{2}, metrics);
  prefetch::step_scores scores;
  for (auto& per_layer : scores.by_predictor)
    per_layer.resize(2);
  // Layer 0: the combination staged {1, 2, 3} and the router chose {2, 5};
  // layer 1: it staged {0} and the router chose {0, 4}.
  scores.by_predictor[2][0].add({1, 2, 3}, {2, 5});
  scores.by_predictor[2][1].add({0}, {0, 4});
  scores.by_predictor[0][0].add({2, 5}, {2, 5});
  scores.by_predictor[0][1].add({7}, {0, 4});
  caf::anon_send(actor, make_prefetch_report(scores));
  caf::anon_send(actor, prefetch_report{{1, 2, 3}});
  auto status = status_of(sys, actor);
  CAF_MESSAGE(status);
  CAF_CHECK_EQUAL(status.rfind("prefetch: 1 steps, ngram recall 0.500 "
                               "precision 0.667 (1.50 per layer)",
                               0),
                  0u);
  CAF_CHECK_NOT_EQUAL(status.find("combined recall 0.500 precision 0.500 "
                                  "(2.00 per layer)"),
                      std::string::npos);
  CAF_CHECK_EQUAL(counter_sum(*metrics, "voltinfer_prefetch_steps_total"), 1);
  CAF_CHECK_EQUAL(counter_sum(*metrics,
                              "voltinfer_prefetch_staged_experts_total"),
                  4);
  CAF_CHECK_EQUAL(counter_sum(*metrics,
                              "voltinfer_prefetch_routed_experts_total"),
                  4);
  CAF_CHECK_EQUAL(counter_sum(*metrics, "voltinfer_prefetch_hit_experts_total",
                              "predictor", "combined"),
                  2);
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
}
