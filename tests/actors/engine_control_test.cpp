#define CAF_SUITE actors.engine_control

// What an operator asks of an engine (actors/engine_control.hpp), in one
// process: the report it answers, and a drain that waits for the rows a host
// holds before it releases the host.

#include <atomic>
#include <thread>

#include "actors/expert.hpp"
#include "actors/traffic_window.hpp"
#include "caf/event_based_actor.hpp"
#include "tests/engine_harness.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

const std::vector<uint32_t> every_id = {0, 1, 2, 3, 4, 5, 6, 7};

/// An expert host that holds every batch until `open` is set, then lets
/// `real` compute it: rows stay in flight for as long as a test wants.
expert_actor::behavior_type gated(expert_actor::pointer self,
                                  expert_actor real,
                                  std::shared_ptr<std::atomic<bool>> open) {
  return {
    [=](expert_batch& batch) -> caf::result<wire_tensor> {
      auto promise = self->make_response_promise<wire_tensor>();
      self->spawn([=](caf::event_based_actor* waiter) -> caf::behavior {
        waiter->send(waiter, tick_atom_v);
        return {
          [=](tick_atom) mutable {
            if (!open->load()) {
              waiter->delayed_send(waiter, std::chrono::milliseconds{10},
                                   tick_atom_v);
              return;
            }
            waiter->request(real, caf::infinite, batch)
              .then(
                [=](wire_tensor& out) mutable {
                  promise.deliver(std::move(out));
                  waiter->quit();
                },
                [=](caf::error& err) mutable {
                  promise.deliver(std::move(err));
                  waiter->quit();
                });
          },
        };
      });
      return promise;
    },
    [](hosted_atom) { return expert_hello{every_id, {}}; },
  };
}

/// A router's engine in this process: its executor computes no expert, two
/// hosts named like nodes serve every expert, the first gated.
struct two_host_router {
  two_host_router() : ckpt(open_fixture()), sys(cfg) {
    standalone_options options;
    options.engine.role = "router";
    options.engine.node_id = "r1";
    auto exec = make_executor(ckpt, options, false);
    if (!exec)
      CAF_FAIL(describe(exec.error()));
    auto weights = *expert_weights::load(ckpt, every_id);
    auto first = sys.spawn(expert, weights);
    auto second = sys.spawn(expert, weights);
    std::vector<expert_host> hosts;
    hosts.push_back({sys.spawn(gated, first, open), every_id, "10.0.0.1:7001",
                     0, 0});
    hosts.push_back({second, every_id, "10.0.0.2:7001", 0, 0});
    eng = spawn_engine(sys, *exec, std::move(hosts), options.engine);
  }

  ~two_host_router() {
    open->store(true);
    caf::anon_send_exit(eng, caf::exit_reason::user_shutdown);
  }

  node_report inspect() {
    caf::scoped_actor self{sys};
    node_report report;
    self->request(eng, std::chrono::seconds{30}, inspect_atom_v)
      .receive([&](node_report& r) { report = std::move(r); },
               [](caf::error& err) { CAF_FAIL(describe(err)); });
    return report;
  }

  /// The entry of the node at `address`, or null.
  static const node_entry* node(const node_report& report,
                                const std::string& address) {
    for (const auto& n : report.nodes)
      if (n.address == address)
        return &n;
    return nullptr;
  }

  checkpoint ckpt;
  volt_system_config cfg;
  caf::actor_system sys;
  std::shared_ptr<std::atomic<bool>> open
    = std::make_shared<std::atomic<bool>>(false);
  engine_actor eng;
};

} // namespace

CAF_TEST(rates count the window of the last ten seconds) {
  auto t0 = traffic_window::clock_type::now();
  traffic_window w{t0};
  CAF_CHECK_EQUAL(w.rate(4, t0).rows_per_second, 0.0);
  w.add(4, 30, t0 + std::chrono::milliseconds{100});
  w.add(4, 10, t0 + std::chrono::milliseconds{200});
  // Less than a second since the origin counts as one second.
  auto early = w.rate(4, t0 + std::chrono::milliseconds{500});
  CAF_CHECK_EQUAL(early.batches_per_second, 2.0);
  CAF_CHECK_EQUAL(early.rows_per_second, 40.0);
  // Four seconds in: the same batches over four seconds.
  auto later = w.rate(4, t0 + std::chrono::seconds{4});
  CAF_CHECK_EQUAL(later.rows_per_second, 10.0);
  // Twenty seconds in they have left the window; a bucket is reused.
  w.add(4, 5, t0 + std::chrono::milliseconds{20100});
  auto late = w.rate(4, t0 + std::chrono::milliseconds{20500});
  CAF_CHECK_EQUAL(late.batches_per_second, 1.0 / 9.5);
  CAF_CHECK_EQUAL(w.rate(5, t0 + std::chrono::seconds{4}).rows_per_second,
                  0.0);
}

CAF_TEST(the report and a drain that waits for the rows in flight) {
  two_host_router router;
  // The expected tokens, from a standalone engine.
  engine_harness alone{router.ckpt};
  auto want = alone.generate(request_for({5, 6, 7}, 4));
  CAF_REQUIRE(want);
  auto report = router.inspect();
  CAF_REQUIRE_EQUAL(report.nodes.size(), 3u);
  CAF_CHECK_EQUAL(report.nodes[0].id, "r1");
  CAF_CHECK_EQUAL(report.nodes[0].role, "router");
  CAF_CHECK_EQUAL(report.nodes[0].liveness, "up");
  CAF_REQUIRE_EQUAL(report.experts.size(), 8u);
  CAF_CHECK_EQUAL(report.experts[3].hosts,
                  std::vector<std::string>({"10.0.0.1:7001", "10.0.0.2:7001"}));
  CAF_CHECK(!report.experts[3].in_process);
  CAF_CHECK_EQUAL(report.queue.completed, 0u);
  CAF_CHECK(report.queue.missing_experts.empty());
  CAF_CHECK_EQUAL(report.kv.where, "cpu");
  CAF_CHECK_GREATER(report.kv.pool.pages_total, 0);
  CAF_CHECK_EQUAL(report.kv.pool.pages_free, report.kv.pool.pages_total);
  // A request whose first rows the gated host holds.
  caf::scoped_actor client{router.sys};
  auto pending = client->request(router.eng, std::chrono::seconds{60},
                                 generate_atom_v, request_for({5, 6, 7}, 4));
  const node_entry* first = nullptr;
  for (int i = 0; i < 3000; ++i) {
    report = router.inspect();
    first = two_host_router::node(report, "10.0.0.1:7001");
    if (first != nullptr && first->rows_in_flight > 0)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  CAF_REQUIRE(first != nullptr && first->rows_in_flight > 0);
  CAF_REQUIRE_EQUAL(report.requests.size(), 1u);
  CAF_CHECK_EQUAL(report.requests[0].state, "running");
  CAF_CHECK_EQUAL(report.requests[0].prompt_tokens, 3);
  int64_t held = 0;
  for (const auto& e : report.experts)
    held += e.rows_in_flight;
  CAF_CHECK_EQUAL(held, first->rows_in_flight);
  // Drain the gated host: it is draining while it holds rows.
  auto drain = client->request(router.eng, std::chrono::seconds{60},
                               drain_atom_v, std::string{"10.0.0.1:7001"});
  report = router.inspect();
  CAF_REQUIRE(two_host_router::node(report, "10.0.0.1:7001") != nullptr);
  CAF_CHECK_EQUAL(two_host_router::node(report, "10.0.0.1:7001")->liveness,
                  "draining");
  // A second drain of it, or the autoscaler retiring it, is not a new one.
  client
    ->request(router.eng, std::chrono::seconds{60}, drain_atom_v,
              std::string{"10.0.0.1:7001"})
    .receive(
      [](const std::vector<uint32_t>&) { CAF_FAIL("drained twice"); },
      [](caf::error& err) {
        CAF_CHECK_EQUAL(describe(err),
                        "drain: 10.0.0.1:7001 is already being retired (by a "
                        "drain or by the autoscaler's scale-down)");
      });
  router.open->store(true);
  drain.receive(
    [](const std::vector<uint32_t>& experts) {
      CAF_CHECK_EQUAL(experts, every_id);
    },
    [](caf::error& err) { CAF_FAIL(describe(err)); });
  pending.receive(
    [&](const generate_result& res) {
      CAF_CHECK_EQUAL(res.new_tokens, want->new_tokens);
    },
    [](caf::error& err) { CAF_FAIL(describe(err)); });
  report = router.inspect();
  CAF_CHECK(two_host_router::node(report, "10.0.0.1:7001") == nullptr);
  const auto* second = two_host_router::node(report, "10.0.0.2:7001");
  CAF_REQUIRE(second != nullptr);
  CAF_CHECK_GREATER(second->rows_sent, 0u);
  CAF_CHECK_EQUAL(report.experts[3].hosts,
                  std::vector<std::string>({"10.0.0.2:7001"}));
  CAF_CHECK_GREATER(report.experts[3].requests_per_second
                      + report.experts[5].requests_per_second,
                    0.0);
  CAF_CHECK_EQUAL(report.queue.completed, 1u);
  CAF_CHECK(report.requests.empty());
  // What a drain or a spawn refuses, in one line each.
  auto check_refusal = [](const caf::error& err, const std::string& text) {
    CAF_CHECK(err == volt_errc::invalid_request);
    CAF_CHECK_EQUAL(describe(err), text);
  };
  auto drain_refusal = [&](const std::string& node, const std::string& text) {
    client->request(router.eng, std::chrono::seconds{30}, drain_atom_v, node)
      .receive([](const std::vector<uint32_t>&) { CAF_FAIL("not refused"); },
               [&](caf::error& err) { check_refusal(err, text); });
  };
  drain_refusal("10.0.0.2:7001",
                "drain: 10.0.0.2:7001 is the only live host of experts 0, 1, "
                "2, 3, 4, 5, 6, 7; spawn them on another node first");
  drain_refusal("10.0.0.1:7001",
                "drain: no expert host at 10.0.0.1:7001 (hosts: "
                "10.0.0.2:7001)");
  drain_refusal("somewhere", "drain: expected HOST:PORT, got 'somewhere'");
  client
    ->request(router.eng, std::chrono::seconds{30}, place_atom_v,
              std::string{"10.0.0.3:7001"}, std::vector<uint32_t>{1})
    .receive([](const std::string&) { CAF_FAIL("not refused"); },
             [&](caf::error& err) {
               check_refusal(err, "spawn: this node has no discovery to "
                                  "place experts with (only a router's "
                                  "engine has one)");
             });
}
