#define CAF_SUITE actors.retire

// Retiring an expert host from an engine (what the autoscaler's scale_down
// does): the host is drained while requests run and their answers stay the
// same; the last live host of an expert is refused; an engine reports its
// load (queue, rows per expert, hosts per expert).

#include <atomic>
#include <numeric>
#include <thread>

#include "actors/replicas.hpp"
#include "caf/event_based_actor.hpp"
#include "tests/actors/custom_node.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

engine_load load_of(custom_node& node) {
  caf::scoped_actor self{node.sys};
  engine_load load;
  self->request(node.eng, std::chrono::seconds{10}, load_atom_v)
    .receive([&](engine_load& x) { load = std::move(x); },
             [](caf::error& err) { CAF_FAIL(describe(err)); });
  return load;
}

caf::expected<bool> retire(custom_node& node, const expert_actor& host) {
  caf::scoped_actor self{node.sys};
  caf::expected<bool> result{false};
  self->request(node.eng, std::chrono::seconds{10}, retire_atom_v, host)
    .receive([&](bool x) { result = x; },
             [&](caf::error& err) { result = std::move(err); });
  return result;
}

/// Batches a slow replica took and passed on.
struct slow_counts {
  std::atomic<int> received{0};
  std::atomic<int> forwarded{0};
};

/// A replica on a busy node: each batch waits 30 ms before `real` computes
/// it. Detached, so the wait holds no scheduler thread.
caf::behavior slow_replica(caf::event_based_actor* self, expert_actor real,
                           std::shared_ptr<slow_counts> counts) {
  return {
    [=](expert_batch& batch) -> caf::result<wire_tensor> {
      ++counts->received;
      std::this_thread::sleep_for(std::chrono::milliseconds{30});
      ++counts->forwarded;
      return self->delegate(real, std::move(batch));
    },
    [](hosted_atom) { return expert_hello{all_ids, {}}; },
  };
}

/// 40 varied tokens: the first layer routes them through every expert.
std::vector<int32_t> varied_prompt() {
  std::vector<int32_t> prompt(40);
  for (int i = 0; i < 40; ++i)
    prompt[i] = (i * 37) % 320;
  return prompt;
}

} // namespace

CAF_TEST(a host retired mid request is drained and the answer stays the same) {
  custom_node node{{}, quick_options()};
  auto kept = node.sys.spawn(expert, node.all);
  auto counts = std::make_shared<slow_counts>();
  auto replica = caf::actor_cast<expert_actor>(node.sys.spawn<caf::detached>(
    slow_replica, node.sys.spawn(expert, node.all), counts));
  caf::anon_send(node.eng, host_atom_v, kept, all_ids, std::string{"kept"});
  caf::anon_send(node.eng, host_atom_v, replica, all_ids,
                 std::string{"replica"});
  CAF_CHECK_EQUAL(load_of(node).expert_hosts, std::vector<uint32_t>(8, 2));
  caf::scoped_actor self{node.sys};
  auto pending = self->request(node.eng, std::chrono::seconds{60},
                               generate_atom_v,
                               request_for(varied_prompt(), 24));
  // Retire the replica while it holds rows, through the helper a
  // scale_down uses; when the engine answers, every batch the replica took
  // must have been answered.
  for (int i = 0; i < 10000 && counts->received == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  CAF_REQUIRE_GREATER(counts->received.load(), 0);
  std::atomic<bool> done{false};
  std::atomic<bool> retired{false};
  std::atomic<int> pending_at_answer{-1};
  node.sys.spawn([&](caf::event_based_actor* ptr) {
    retire_expert_host(ptr, node.eng, replica, std::chrono::seconds{30},
                       [&, ptr](const caf::expected<bool>& result) {
                         pending_at_answer = counts->received
                                             - counts->forwarded;
                         retired = result && *result;
                         done = true;
                         ptr->quit();
                       });
  });
  std::vector<int32_t> got;
  pending.receive([&](const generate_result& res) { got = res.new_tokens; },
                  [](caf::error& err) { CAF_FAIL(describe(err)); });
  for (int i = 0; i < 3000 && !done; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  CAF_REQUIRE(done);
  CAF_CHECK(retired);
  CAF_CHECK_EQUAL(pending_at_answer.load(), 0);
  CAF_CHECK_EQUAL(load_of(node).expert_hosts, std::vector<uint32_t>(8, 1));
  engine_harness alone{node.ckpt};
  auto want = alone.generate(request_for(varied_prompt(), 24));
  CAF_REQUIRE(want);
  CAF_CHECK_EQUAL(got, want->new_tokens);
  // The replica was stopped after the engine let it go; requests go on
  // without it.
  auto taken = counts->received.load();
  auto again = node.generate(request_for(varied_prompt(), 24));
  CAF_REQUIRE(again);
  CAF_CHECK_EQUAL(again->new_tokens, want->new_tokens);
  CAF_CHECK_EQUAL(counts->received.load(), taken);
  caf::scoped_actor probe{node.sys};
  probe->request(node.eng, std::chrono::seconds{10}, status_atom_v)
    .receive(
      [](const std::string& status) {
        CAF_CHECK_NOT_EQUAL(status.find("1 expert hosts"), std::string::npos);
        CAF_CHECK_NOT_EQUAL(status.find("0 failed"), std::string::npos);
      },
      [](caf::error& err) { CAF_FAIL(describe(err)); });
}

CAF_TEST(the last live host of an expert is not retired) {
  custom_node node{{}, quick_options()};
  auto some = *expert_weights::load(node.ckpt, {0, 1, 2, 3, 4});
  auto partial = node.sys.spawn(expert, some);
  auto full = node.sys.spawn(expert, node.all);
  caf::anon_send(node.eng, host_atom_v, partial,
                 std::vector<uint32_t>{0, 1, 2, 3, 4}, std::string{"partial"});
  caf::anon_send(node.eng, host_atom_v, full, all_ids, std::string{"full"});
  CAF_CHECK_EQUAL(load_of(node).expert_hosts,
                  std::vector<uint32_t>({2, 2, 2, 2, 2, 1, 1, 1}));
  auto refused = retire(node, full);
  CAF_REQUIRE(!refused);
  CAF_CHECK(refused.error() == volt_errc::invalid_request);
  CAF_CHECK_EQUAL(describe(refused.error()),
                  "cannot retire expert host full: it is the last live host "
                  "of experts 5, 6, 7");
  // An actor the engine does not use is no host to retire.
  CAF_CHECK_EQUAL(retire(node, node.sys.spawn(expert, some)), false);
  // The partial host can go; then the full one is the last of every expert.
  CAF_CHECK_EQUAL(retire(node, partial), true);
  CAF_CHECK_EQUAL(load_of(node).expert_hosts, std::vector<uint32_t>(8, 1));
  CAF_CHECK(!retire(node, full));
  auto res = node.generate(request_for({203}, 3));
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->new_tokens, std::vector<int32_t>({170, 288, 170}));
}

CAF_TEST(the engine reports rows per expert and its queue) {
  custom_node node{{}, quick_options()};
  caf::anon_send(node.eng, host_atom_v, node.sys.spawn(expert, node.all),
                 all_ids, std::string{"host"});
  auto before = load_of(node);
  CAF_CHECK_EQUAL(before.queued, 0u);
  CAF_CHECK_EQUAL(before.running, 0u);
  CAF_CHECK_EQUAL(before.expert_rows, std::vector<uint64_t>(8, 0));
  auto res = node.generate(request_for(varied_prompt(), 4));
  CAF_REQUIRE(res);
  auto after = load_of(node);
  CAF_REQUIRE_EQUAL(after.expert_rows.size(), 8u);
  // Every row of every layer goes to two experts (top-2): 43 positions
  // computed (40 prompt tokens, then 3 decode steps) in 2 layers.
  auto rows = std::accumulate(after.expert_rows.begin(),
                              after.expert_rows.end(), uint64_t{0});
  CAF_CHECK_EQUAL(rows, 43u * 2u * 2u);
  CAF_CHECK_EQUAL(after.queued, 0u);
  // The one host was sent every row and holds none now.
  CAF_REQUIRE_EQUAL(after.hosts.size(), 1u);
  CAF_CHECK_EQUAL(after.hosts[0].name, "host");
  CAF_CHECK_EQUAL(after.hosts[0].experts, all_ids);
  CAF_CHECK_EQUAL(after.hosts[0].rows, rows);
  CAF_CHECK_EQUAL(after.hosts[0].inflight_rows, 0);
  CAF_CHECK(!after.hosts[0].retiring);
}
