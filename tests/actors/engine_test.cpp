#define CAF_SUITE actors.engine

// The engine as a client sees it: queued concurrent requests, stopping rules,
// request validation, and failures of the actors it depends on (errors, never
// hangs).

#include "actors/expert.hpp"
#include "actors/gating.hpp"
#include "caf/event_based_actor.hpp"
#include "tests/engine_harness.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

generate_request request_for(std::vector<int32_t> prompt, uint32_t new_tokens) {
  generate_request req;
  req.prompt = std::move(prompt);
  req.max_new_tokens = new_tokens;
  return req;
}

checkpoint open_fixture() {
  auto ckpt = checkpoint::open(tiny_mixtral_dir());
  if (!ckpt)
    CAF_FAIL(describe(ckpt.error()));
  return std::move(*ckpt);
}

} // namespace

CAF_TEST(concurrent requests are queued and each gets its own answer) {
  auto ckpt = open_fixture();
  engine_harness node{ckpt};
  std::vector<std::vector<int32_t>> prompts
    = {{203}, {5, 6, 7}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
  std::vector<std::vector<int32_t>> alone;
  for (auto& p : prompts)
    alone.push_back(node.generate(request_for(p, 5))->new_tokens);
  // All requests are in the engine's mailbox before the first is answered.
  caf::scoped_actor self{node.system()};
  std::vector<decltype(self->request(node.engine(), caf::infinite,
                                     generate_atom_v, generate_request{}))>
    handles;
  for (auto& p : prompts)
    handles.push_back(self->request(node.engine(), std::chrono::seconds{30},
                                    generate_atom_v, request_for(p, 5)));
  std::map<size_t, std::vector<int32_t>> together;
  for (size_t i = 0; i < handles.size(); ++i)
    handles[i].receive(
      [&](const generate_result& res) { together[i] = res.new_tokens; },
      [&](caf::error& err) { CAF_FAIL(describe(err)); });
  for (size_t i = 0; i < prompts.size(); ++i)
    CAF_CHECK_EQUAL(together[i], alone[i]);
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
  engine_harness node{ckpt, 2, engine_options{16, 2}};
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

CAF_TEST(experts without a host fail requests with their ids) {
  auto ckpt = open_fixture();
  volt_system_config cfg;
  caf::actor_system sys{cfg};
  auto dense = *dense_weights::load(ckpt);
  auto some = *expert_weights::load(ckpt, {0, 1, 2, 3, 4});
  auto eng = sys.spawn(
    engine, dense, sys.spawn(gating, dense),
    std::vector<expert_host>{{sys.spawn(expert, some), {0, 1, 2, 3, 4}}},
    engine_options{});
  caf::scoped_actor self{sys};
  self
    ->request(eng, std::chrono::seconds{10}, generate_atom_v,
              request_for({203}, 2))
    .receive([](const generate_result&) { CAF_FAIL("expected an error"); },
             [](caf::error& err) {
               CAF_CHECK(err == volt_errc::missing_expert);
               CAF_CHECK_EQUAL(describe(err),
                               "no live host for experts 5, 6, 7");
             });
  caf::anon_send_exit(eng, caf::exit_reason::user_shutdown);
}

CAF_TEST(a dead expert actor fails the request instead of hanging it) {
  auto ckpt = open_fixture();
  volt_system_config cfg;
  caf::actor_system sys{cfg};
  auto dense = *dense_weights::load(ckpt);
  auto all = *expert_weights::load(ckpt, {0, 1, 2, 3, 4, 5, 6, 7});
  auto host = sys.spawn(expert, all);
  auto eng
    = sys.spawn(engine, dense, sys.spawn(gating, dense),
                std::vector<expert_host>{{host, {0, 1, 2, 3, 4, 5, 6, 7}}},
                engine_options{});
  caf::scoped_actor self{sys};
  self->send_exit(host, caf::exit_reason::kill);
  self->wait_for(host);
  self
    ->request(eng, std::chrono::seconds{10}, generate_atom_v,
              request_for({203}, 2))
    .receive([](const generate_result&) { CAF_FAIL("expected an error"); },
             [](caf::error& err) {
               CAF_MESSAGE("failed as expected: " << describe(err));
             });
  self->request(eng, std::chrono::seconds{10}, status_atom_v)
    .receive(
      [](const std::string& status) {
        CAF_CHECK_NOT_EQUAL(status.find("1 failed"), std::string::npos);
        CAF_CHECK_NOT_EQUAL(status.find("idle"), std::string::npos);
      },
      [](caf::error& err) { CAF_FAIL(describe(err)); });
  caf::anon_send_exit(eng, caf::exit_reason::user_shutdown);
}
