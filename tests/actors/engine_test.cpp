#define CAF_SUITE actors.engine

// The engine as a client sees it: queued concurrent requests, stopping rules,
// request validation, and failures of the expert hosts it depends on (errors,
// never hangs).

#include <thread>

#include "caf/event_based_actor.hpp"
#include "tests/actors/custom_node.hpp"
#include "tests/engine_harness.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

CAF_TEST(concurrent requests are queued and each gets its own answer) {
  auto ckpt = open_fixture();
  engine_harness node{ckpt};
  std::vector<std::vector<int32_t>> prompts
    = {{203}, {5, 6, 7}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
  std::vector<std::vector<int32_t>> alone;
  for (auto& p : prompts)
    alone.push_back(node.generate(request_for(p, 5))->new_tokens);
  // All requests are in the engine's mailbox before the first is answered.
  std::vector<generate_request> reqs;
  for (auto& p : prompts)
    reqs.push_back(request_for(p, 5));
  auto together = node.generate_all(reqs);
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (!together[i])
      CAF_FAIL(describe(together[i].error()));
    CAF_CHECK_EQUAL(together[i]->new_tokens, alone[i]);
  }
}

CAF_TEST(max_new_tokens bounds generation and zero returns only logits) {
  auto ckpt = open_fixture();
  engine_harness node{ckpt};
  auto res = node.generate(request_for({203}, 3));
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->new_tokens, std::vector<int32_t>({170, 288, 170}));
  CAF_CHECK_EQUAL(res->finish_reason, "length");
  auto none = node.generate(request_for({203}, 0));
  CAF_REQUIRE(none);
  CAF_CHECK(none->new_tokens.empty());
  CAF_CHECK_EQUAL(floats_of(none->last_logits), floats_of(res->last_logits));
}

CAF_TEST(generation stops at the context limit) {
  auto ckpt = open_fixture();
  engine_harness node{ckpt};
  std::vector<int32_t> prompt(1020, 7); // context is 1024
  auto res = node.generate(request_for(prompt, 50));
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->new_tokens.size(), 4u);
  CAF_CHECK_EQUAL(res->finish_reason, "context");
}

CAF_TEST(bad requests get one - line errors and the engine keeps serving) {
  auto ckpt = open_fixture();
  engine_options small_pool;
  small_pool.num_pages = 2;
  engine_harness node{ckpt, small_pool};
  struct bad_case {
    std::vector<int32_t> prompt;
    uint32_t new_tokens;
    std::string fragment;
  };
  std::vector<bad_case> cases = {
    {{}, 4, "prompt: empty"},
    {{5, 320}, 4, "token id 320 at index 1 is outside [0, 320)"},
    {{-1}, 4, "token id -1"},
    {std::vector<int32_t>(1025, 3), 4,
     "1025 tokens exceed the model's context of 1024"},
    {std::vector<int32_t>(30, 3), 10,
     "needs 3 KV pages for 40 tokens but the pool has 2"},
  };
  for (auto& c : cases) {
    auto res = node.generate(request_for(c.prompt, c.new_tokens));
    CAF_REQUIRE(!res);
    CAF_CHECK(res.error() == volt_errc::invalid_request);
    CAF_MESSAGE(describe(res.error()));
    CAF_CHECK_NOT_EQUAL(describe(res.error()).find(c.fragment),
                        std::string::npos);
  }
  auto ok = node.generate(request_for({203}, 2));
  CAF_REQUIRE(ok);
  CAF_CHECK_EQUAL(ok->new_tokens, std::vector<int32_t>({170, 288}));
}

CAF_TEST(requests wait for missing experts and fail naming them) {
  custom_node node{{}, quick_options()};
  auto some = *expert_weights::load(node.ckpt, {0, 1, 2, 3, 4});
  caf::anon_send(node.eng, host_atom_v, node.sys.spawn(expert, some),
                 std::vector<uint32_t>{0, 1, 2, 3, 4}, std::string{"first"});
  auto start = std::chrono::steady_clock::now();
  auto res = node.generate(request_for({203}, 2));
  auto waited = std::chrono::steady_clock::now() - start;
  CAF_REQUIRE(!res);
  CAF_CHECK(res.error() == volt_errc::missing_expert);
  CAF_CHECK_EQUAL(describe(res.error()),
                  "no live host for experts 5, 6, 7 after waiting 300 ms");
  CAF_CHECK_GREATER_OR_EQUAL(waited, std::chrono::milliseconds{300});
  CAF_CHECK_LESS(waited, std::chrono::seconds{5});
}

CAF_TEST(a waiting request runs once the missing experts join) {
  engine_options opts;
  opts.ready_timeout = std::chrono::seconds{20};
  custom_node node{{}, opts};
  caf::scoped_actor self{node.sys};
  auto pending = self->request(node.eng, std::chrono::seconds{30},
                               generate_atom_v, request_for({203}, 3));
  auto ready = self->request(node.eng, std::chrono::seconds{30}, ready_atom_v);
  self->send(node.eng, host_atom_v, node.sys.spawn(expert, node.all), all_ids,
             std::string{"late"});
  ready.receive([](bool ok) { CAF_CHECK(ok); },
                [](caf::error& err) { CAF_FAIL(describe(err)); });
  pending.receive(
    [](const generate_result& res) {
      CAF_CHECK_EQUAL(res.new_tokens, std::vector<int32_t>({170, 288, 170}));
    },
    [](caf::error& err) { CAF_FAIL(describe(err)); });
}

CAF_TEST(a frozen host is bypassed when it dies mid request) {
  custom_node node{{}, quick_options()};
  // The frozen host joins first, so the least-loaded pick chooses it first.
  auto frozen = node.sys.spawn(black_hole, all_ids);
  caf::anon_send(node.eng, host_atom_v, frozen, all_ids, std::string{"frozen"});
  caf::anon_send(node.eng, host_atom_v, node.sys.spawn(expert, node.all),
                 all_ids, std::string{"healthy"});
  caf::scoped_actor self{node.sys};
  auto pending = self->request(node.eng, std::chrono::seconds{30},
                               generate_atom_v, request_for({5, 6, 7}, 4));
  std::this_thread::sleep_for(std::chrono::milliseconds{100});
  self->send_exit(frozen, caf::exit_reason::kill);
  std::vector<int32_t> got;
  pending.receive([&](const generate_result& res) { got = res.new_tokens; },
                  [](caf::error& err) { CAF_FAIL(describe(err)); });
  engine_harness alone{node.ckpt};
  auto want = alone.generate(request_for({5, 6, 7}, 4));
  CAF_REQUIRE(want);
  CAF_CHECK_EQUAL(got, want->new_tokens);
}

CAF_TEST(a host that never answers is retried on a replica after the timeout) {
  auto opts = quick_options();
  opts.step_timeout = std::chrono::milliseconds{200};
  custom_node node{{}, opts};
  caf::anon_send(node.eng, host_atom_v, node.sys.spawn(black_hole, all_ids),
                 all_ids, std::string{"frozen"});
  caf::anon_send(node.eng, host_atom_v, node.sys.spawn(expert, node.all),
                 all_ids, std::string{"healthy"});
  auto res = node.generate(request_for({203}, 3));
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->new_tokens, std::vector<int32_t>({170, 288, 170}));
}

CAF_TEST(losing the only host of an expert fails the request naming it) {
  custom_node node{{}, quick_options()};
  auto frozen = node.sys.spawn(black_hole, std::vector<uint32_t>{4, 5});
  auto rest = *expert_weights::load(node.ckpt, {0, 1, 2, 3, 6, 7});
  caf::anon_send(node.eng, host_atom_v, frozen, std::vector<uint32_t>{4, 5},
                 std::string{"frozen"});
  caf::anon_send(node.eng, host_atom_v, node.sys.spawn(expert, rest),
                 std::vector<uint32_t>{0, 1, 2, 3, 6, 7}, std::string{"rest"});
  caf::scoped_actor self{node.sys};
  // 40 varied tokens route through every expert in the first layer.
  std::vector<int32_t> prompt(40);
  for (int i = 0; i < 40; ++i)
    prompt[i] = (i * 37) % 320;
  auto pending = self->request(node.eng, std::chrono::seconds{30},
                               generate_atom_v, request_for(prompt, 2));
  // A request of four sequences fails once, with one answer, not four.
  auto parallel = request_for(prompt, 2);
  parallel.n = 4;
  parallel.temperature = 1;
  auto pending_n = self->request(node.eng, std::chrono::seconds{30},
                                 generate_atom_v, parallel);
  std::this_thread::sleep_for(std::chrono::milliseconds{100});
  self->send_exit(frozen, caf::exit_reason::kill);
  for (auto* p : {&pending, &pending_n})
    p->receive([](const generate_result&) { CAF_FAIL("expected an error"); },
               [](caf::error& err) {
                 CAF_CHECK(err == volt_errc::missing_expert);
                 CAF_CHECK_NOT_EQUAL(
                   describe(err).find("no live host for experts"),
                   std::string::npos);
                 CAF_MESSAGE(describe(err));
               });
  caf::scoped_actor probe{node.sys};
  probe->request(node.eng, std::chrono::seconds{10}, status_atom_v)
    .receive(
      [](const std::string& status) {
        CAF_CHECK_NOT_EQUAL(status.find("2 failed"), std::string::npos);
        CAF_CHECK_NOT_EQUAL(status.find("0 running"), std::string::npos);
        CAF_CHECK_NOT_EQUAL(status.find("no host for experts 4, 5"),
                            std::string::npos);
      },
      [](caf::error& err) { CAF_FAIL(describe(err)); });
}
