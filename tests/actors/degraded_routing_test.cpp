#define CAF_SUITE actors.degraded_routing

// Degraded routing in the engine ([router] on_missing_expert = "renormalize")
// against the CPU reference that masks the same experts out of routing:
// a host lost mid-step (rows in flight at it) makes the step run again
// without its experts and the answer equal the masked reference bit for bit;
// a host that joins again brings full routing back by itself; at the start a
// renormalising engine waits ready_timeout for every expert before it serves
// without some; a mask that drops none of a request's experts changes no bit.

#include <algorithm>
#include <thread>

#include "actors/degraded_routing.hpp"
#include "tests/actors/custom_node.hpp"
#include "tests/engine_harness.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

engine_options renormalizing(std::chrono::milliseconds ready_timeout) {
  engine_options opts;
  opts.ready_timeout = ready_timeout;
  opts.on_missing_expert = missing_expert_policy::renormalize;
  return opts;
}

/// 40 varied tokens: their rows choose every expert in the first layer.
std::vector<int32_t> varied_prompt() {
  std::vector<int32_t> prompt(40);
  for (int i = 0; i < 40; ++i)
    prompt[i] = (i * 37) % 320;
  return prompt;
}

/// The answer of the CPU reference with `masked` out of routing.
generate_result masked_reference(const checkpoint& ckpt,
                                 const generate_request& req,
                                 std::vector<uint32_t> masked) {
  engine_options opts;
  opts.masked_experts = std::move(masked);
  engine_harness reference{ckpt, opts};
  auto res = reference.generate(req);
  if (!res)
    CAF_FAIL(describe(res.error()));
  return std::move(*res);
}

bool same_logits(const generate_result& a, const generate_result& b) {
  return a.last_logits.bytes == b.last_logits.bytes;
}

} // namespace

CAF_TEST(the policy serves without missing experts only when it renormalises) {
  degraded_routing fail{
    missing_expert_policy::fail, {}, 8, std::chrono::milliseconds{0}};
  CAF_CHECK(fail.can_serve({}));
  CAF_CHECK(!fail.can_serve({4, 5}));
  CAF_CHECK(fail.step_mask({4, 5}).empty());
  degraded_routing renorm{
    missing_expert_policy::renormalize, {7}, 8, std::chrono::hours{1}};
  // Before every expert had a host, the start's grace holds requests back.
  CAF_CHECK(!renorm.can_serve({4, 5}));
  CAF_CHECK(renorm.in_grace());
  CAF_CHECK(renorm.can_serve({}));
  CAF_CHECK(!renorm.in_grace());
  CAF_CHECK(renorm.can_serve({4, 5}));
  CAF_CHECK_EQUAL(renorm.step_mask({4, 5}), (std::vector<uint32_t>{4, 5, 7}));
  CAF_CHECK_EQUAL(renorm.step_mask({}), (std::vector<uint32_t>{7}));
  // No expert left to route to.
  CAF_CHECK(!renorm.can_serve({0, 1, 2, 3, 4, 5, 6}));
}

CAF_TEST(a host lost mid step is routed around and the answer is the masked one) {
  custom_node node{{}, renormalizing(std::chrono::seconds{20})};
  auto frozen = node.add_frozen_host({4, 5});
  node.add_host({0, 1, 2, 3, 6, 7}, "rest");
  caf::scoped_actor self{node.sys};
  auto req = request_for(varied_prompt(), 6);
  auto pending = self->request(node.eng, std::chrono::seconds{30},
                               generate_atom_v, req);
  auto parallel = req;
  parallel.n = 3;
  parallel.temperature = 1;
  parallel.seed = 9;
  auto pending_n = self->request(node.eng, std::chrono::seconds{30},
                                 generate_atom_v, parallel);
  // The first layer's rows for experts 4 and 5 wait at the frozen host.
  std::this_thread::sleep_for(std::chrono::milliseconds{100});
  self->send_exit(frozen, caf::exit_reason::kill);
  generate_result got, got_n;
  pending.receive([&](generate_result& res) { got = std::move(res); },
                  [](caf::error& err) { CAF_FAIL(describe(err)); });
  pending_n.receive([&](generate_result& res) { got_n = std::move(res); },
                    [](caf::error& err) { CAF_FAIL(describe(err)); });
  auto want = masked_reference(node.ckpt, req, {4, 5});
  CAF_CHECK_EQUAL(got.new_tokens, want.new_tokens);
  CAF_CHECK(same_logits(got, want));
  CAF_CHECK_EQUAL(got.degraded_experts, (std::vector<uint32_t>{4, 5}));
  CAF_CHECK_EQUAL(got.degraded_tokens, 6);
  CAF_CHECK_EQUAL(want.degraded_experts, got.degraded_experts);
  CAF_CHECK_EQUAL(want.degraded_tokens, 6);
  auto want_n = masked_reference(node.ckpt, parallel, {4, 5});
  CAF_CHECK_EQUAL(got_n.sequences, want_n.sequences);
  CAF_CHECK_EQUAL(got_n.degraded_tokens, 18);
  // The experts come back: full routing again, the unmasked answer, no
  // "degraded" (the degraded prompt's pages never entered the prefix cache).
  node.add_host({4, 5}, "back");
  engine_harness full{node.ckpt};
  auto want_full = full.generate(req);
  CAF_REQUIRE(want_full);
  // The host joins asynchronously: wait for an answer with full routing.
  generate_result healed;
  for (int i = 0; i < 100; ++i) {
    auto res = node.generate(req);
    CAF_REQUIRE(res);
    healed = std::move(*res);
    if (healed.degraded_experts.empty())
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  CAF_CHECK(healed.degraded_experts.empty());
  CAF_CHECK_EQUAL(healed.degraded_tokens, 0);
  CAF_CHECK_EQUAL(healed.new_tokens, want_full->new_tokens);
  CAF_CHECK(same_logits(healed, *want_full));
  CAF_CHECK(!same_logits(healed, want));
}

CAF_TEST(at the start a renormalising engine waits ready_timeout then serves) {
  auto start = std::chrono::steady_clock::now();
  custom_node node{{}, renormalizing(std::chrono::milliseconds{300})};
  node.add_host({0, 1, 2, 3, 4}, "first");
  caf::scoped_actor self{node.sys};
  auto ready = self->request(node.eng, std::chrono::seconds{10}, ready_atom_v);
  auto req = request_for({203, 17, 99}, 4);
  auto res = node.generate(req);
  auto waited = std::chrono::steady_clock::now() - start;
  CAF_REQUIRE(res);
  CAF_CHECK_GREATER_OR_EQUAL(waited, std::chrono::milliseconds{300});
  ready.receive([](bool ok) { CAF_CHECK(ok); },
                [](caf::error& err) { CAF_FAIL(describe(err)); });
  auto want = masked_reference(node.ckpt, req, {5, 6, 7});
  CAF_CHECK_EQUAL(res->new_tokens, want.new_tokens);
  CAF_CHECK(same_logits(*res, want));
  CAF_CHECK_EQUAL(res->degraded_experts, want.degraded_experts);
}

CAF_TEST(without any expert a renormalising engine fails as before) {
  custom_node node{{}, renormalizing(std::chrono::milliseconds{300})};
  auto res = node.generate(request_for({203}, 2));
  CAF_REQUIRE(!res);
  CAF_CHECK(res.error() == volt_errc::missing_expert);
  CAF_CHECK_NOT_EQUAL(describe(res.error())
                        .find("no live host for experts 0, "
                              "1, 2, 3, 4, 5, 6, 7"),
                      std::string::npos);
}

CAF_TEST(a mask that drops none of the chosen experts changes no bit) {
  auto ckpt = open_fixture();
  auto req = request_for({203}, 1);
  req.return_routing = true;
  engine_harness full{ckpt};
  auto want = full.generate(req);
  CAF_REQUIRE(want);
  // One prompt token, one new token: the prompt's step is the only one, and
  // its routing names every expert the answer used.
  auto used = ints_of(want->routing);
  uint32_t unused = 0;
  while (std::find(used.begin(), used.end(), int32_t(unused)) != used.end())
    ++unused;
  CAF_REQUIRE_LESS(unused, 8u);
  auto got = masked_reference(ckpt, req, {unused});
  CAF_CHECK_EQUAL(got.new_tokens, want->new_tokens);
  CAF_CHECK(same_logits(got, *want));
  CAF_CHECK(got.degraded_experts.empty());
  // Masking one it used degrades it.
  auto lost = masked_reference(ckpt, req, {uint32_t(used[0])});
  CAF_CHECK_EQUAL(lost.degraded_experts,
                  (std::vector<uint32_t>{uint32_t(used[0])}));
  CAF_CHECK_EQUAL(lost.degraded_tokens, 1);
  CAF_CHECK(!same_logits(lost, *want));
}
