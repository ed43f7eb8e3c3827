#define CAF_SUITE actors.batching

// Continuous batching: many concurrent requests join the running batch and
// get exactly the answers they get alone; long prompts are prefilled in
// chunks without changing results; a full queue refuses with an error.

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "gpu/cpu/parallel.hpp"
#include "net/metrics.hpp"
#include "tests/engine_harness.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// 64 prompts of mixed lengths (1 to 64 tokens) and budgets.
std::vector<generate_request> mixed_requests() {
  std::vector<generate_request> out;
  for (int i = 0; i < 64; ++i) {
    std::vector<int32_t> prompt;
    for (int j = 0; j <= (i * 13) % 64; ++j)
      prompt.push_back((i * 31 + j * 7) % 320);
    out.push_back(request_for(prompt, 4 + static_cast<uint32_t>(i % 9)));
  }
  return out;
}

/// Sends every request at once and returns the answers in order; fails the
/// test on an error.
std::vector<generate_result>
generate_together(engine_harness& node,
                  const std::vector<generate_request>& reqs) {
  std::vector<generate_result> out;
  for (auto& res : node.generate_all(reqs)) {
    if (!res)
      CAF_FAIL(describe(res.error()));
    out.push_back(std::move(*res));
  }
  return out;
}

} // namespace

CAF_TEST(sixty four concurrent requests equal their answers alone) {
  auto ckpt = open_fixture();
  engine_options opts;
  opts.num_pages = 64 * 5; // room for all of them at once
  engine_harness node{ckpt, opts};
  auto requests = mixed_requests();
  std::vector<generate_result> alone;
  for (auto& req : requests) {
    auto res = node.generate(req);
    CAF_REQUIRE(res);
    alone.push_back(std::move(*res));
  }
  auto together = generate_together(node, requests);
  double worst = 0;
  for (size_t i = 0; i < together.size(); ++i) {
    const auto& res = together[i];
    CAF_CHECK_EQUAL(res.new_tokens, alone[i].new_tokens);
    worst = std::max(worst, relative_error(floats_of(res.last_logits),
                                           floats_of(alone[i].last_logits)));
  }
  CAF_MESSAGE(
    "worst last-logits relative error batched vs alone: " << sci(worst));
  CAF_CHECK_LESS_OR_EQUAL(worst, 1e-5);
  caf::scoped_actor probe{node.system()};
  probe->request(node.engine(), std::chrono::seconds{5}, status_atom_v)
    .receive(
      [](const std::string& status) {
        CAF_CHECK_NOT_EQUAL(status.find("128 completed"), std::string::npos);
      },
      [](caf::error& err) { CAF_FAIL(describe(err)); });
}

CAF_TEST(splitting steps over threads changes no bit) {
  auto ckpt = open_fixture();
  engine_options opts;
  opts.num_pages = 64 * 5;
  engine_harness node{ckpt, opts};
  auto requests = mixed_requests();
  // One row per part (every step split over all compute threads), then
  // whole steps on the engine's thread.
  cpu::set_rows_per_part(1);
  auto split = generate_together(node, requests);
  cpu::set_rows_per_part(4096);
  auto whole = generate_together(node, requests);
  cpu::set_rows_per_part(0);
  CAF_MESSAGE("compute threads: " << cpu::compute_threads());
  for (size_t i = 0; i < split.size(); ++i) {
    CAF_CHECK_EQUAL(split[i].new_tokens, whole[i].new_tokens);
    CAF_CHECK(floats_of(split[i].last_logits)
              == floats_of(whole[i].last_logits));
  }
}

CAF_TEST(chunked prefill reproduces the reference routing and logits) {
  auto ckpt = open_fixture();
  engine_options whole;
  engine_options chunked;
  chunked.batching.prefill_chunk = 7; // 40 prompt tokens in 6 chunks
  engine_harness a{ckpt, whole};
  engine_harness b{ckpt, chunked};
  std::vector<int32_t> prompt;
  for (int i = 0; i < 40; ++i)
    prompt.push_back((i * 37 + 11) % 320);
  auto req = request_for(prompt, 8);
  req.return_all_logits = true;
  req.return_routing = true;
  auto x = a.generate(req);
  auto y = b.generate(req);
  CAF_REQUIRE(x);
  CAF_REQUIRE(y);
  CAF_CHECK_EQUAL(y->new_tokens, x->new_tokens);
  CAF_CHECK_EQUAL(floats_of(y->all_logits), floats_of(x->all_logits));
  CAF_CHECK_EQUAL(ints_of(y->routing), ints_of(x->routing));
  CAF_CHECK_EQUAL(floats_of(y->last_logits), floats_of(x->last_logits));
}

CAF_TEST(a full queue refuses with an error and nothing is lost) {
  auto ckpt = open_fixture();
  engine_options opts;
  opts.batching.max_batch = 1;
  opts.batching.max_queue = 2;
  opts.metrics = std::make_shared<node_metrics>("t");
  engine_harness node{ckpt, opts};
  // One runs, two wait, the fourth and fifth are refused.
  auto answers = node.generate_all(
    std::vector<generate_request>(5, request_for({203, 5, 6}, 200)));
  int ok = 0;
  int refused = 0;
  for (auto& res : answers) {
    if (res) {
      ++ok;
      CAF_CHECK_EQUAL(res->new_tokens.size(), 200u);
    } else {
      ++refused;
      // Not a bad request: one to send again later (HTTP's 429).
      CAF_CHECK(res.error() == volt_errc::queue_full);
      CAF_CHECK_NOT_EQUAL(describe(res.error()).find("queue full"),
                          std::string::npos);
    }
  }
  CAF_CHECK_EQUAL(ok, 3);
  CAF_CHECK_EQUAL(refused, 2);
  // Refused requests count as failed ones, as the metric's docs say.
  CAF_CHECK_EQUAL(requests_total(*opts.metrics, "error"), 2.0);
  CAF_CHECK_EQUAL(requests_total(*opts.metrics, "ok"), 3.0);
  // A malformed request is refused and counted too.
  auto bad = node.generate(request_for({320}, 4));
  CAF_REQUIRE(!bad);
  CAF_CHECK(bad.error() == volt_errc::invalid_request);
  CAF_CHECK_EQUAL(requests_total(*opts.metrics, "error"), 3.0);
}

CAF_TEST(requests wait for pages held by running sequences) {
  auto ckpt = open_fixture();
  engine_options opts;
  opts.num_pages = 3; // one request of 40 tokens at a time
  engine_harness node{ckpt, opts};
  std::vector<generate_request> reqs;
  for (int i = 0; i < 4; ++i)
    reqs.push_back(request_for(std::vector<int32_t>(30, 7 + i), 10));
  for (auto& res : generate_together(node, reqs))
    CAF_CHECK_EQUAL(res.new_tokens.size(), 10u);
}

CAF_TEST(sampling with a seed is reproducible alone and in a batch) {
  auto ckpt = open_fixture();
  engine_harness node{ckpt};
  auto sampled = [](uint64_t seed) {
    auto req = request_for({5, 6, 7}, 16);
    req.temperature = 0.8f;
    req.top_p = 0.9f;
    req.seed = seed;
    return req;
  };
  auto a = node.generate(sampled(1));
  auto b = node.generate(sampled(1));
  auto c = node.generate(sampled(2));
  CAF_REQUIRE(a && b && c);
  CAF_CHECK_EQUAL(a->new_tokens, b->new_tokens);
  CAF_CHECK_NOT_EQUAL(a->new_tokens, c->new_tokens);
  // In a batch with other requests, the same seed gives the same tokens.
  auto got = generate_together(node, {sampled(3), sampled(1), sampled(4)});
  CAF_CHECK_EQUAL(got[1].new_tokens, a->new_tokens);
  // Temperature 0 is greedy whatever the seed.
  auto greedy = request_for({203}, 12);
  greedy.seed = 99;
  auto g = node.generate(greedy);
  CAF_REQUIRE(g);
  CAF_CHECK_EQUAL(g->new_tokens,
                  std::vector<int32_t>({170, 288, 170, 288, 170, 170, 288, 170,
                                        288, 170, 170, 288}));
  // Bad parameters are refused with the field named.
  auto bad = sampled(1);
  bad.top_p = 0;
  auto refused = node.generate(bad);
  CAF_REQUIRE(!refused);
  CAF_CHECK(refused.error() == volt_errc::invalid_request);
  CAF_CHECK_NOT_EQUAL(describe(refused.error()).find("top_p"),
                      std::string::npos);
}

CAF_TEST(a repeated prompt reuses its cached pages and gives the same answer) {
  auto ckpt = open_fixture();
  engine_harness node{ckpt};
  std::vector<int32_t> prompt;
  for (int i = 0; i < 40; ++i)
    prompt.push_back((i * 37 + 11) % 320);
  auto first = node.generate(request_for(prompt, 8));
  auto second = node.generate(request_for(prompt, 8));
  CAF_REQUIRE(first && second);
  CAF_CHECK_EQUAL(first->kv.prefix_hit_tokens, 0);
  // Pages of 16 tokens: the two full pages before the last prompt token.
  CAF_CHECK_EQUAL(second->kv.prefix_hit_tokens, 32);
  CAF_CHECK_EQUAL(second->kv.page_size, 16);
  CAF_CHECK_EQUAL(second->new_tokens, first->new_tokens);
  CAF_CHECK_EQUAL(floats_of(second->last_logits),
                  floats_of(first->last_logits));
  // A prompt sharing only the first page hits only that page.
  auto other = prompt;
  other[20] = (other[20] + 1) % 320;
  auto third = node.generate(request_for(other, 4));
  CAF_REQUIRE(third);
  CAF_CHECK_EQUAL(third->kv.prefix_hit_tokens, 16);
}

namespace {

generate_request parallel_sampling(uint64_t seed, uint32_t n) {
  auto req = request_for({9, 41, 7, 200, 13}, 12);
  req.temperature = 1.0f;
  req.seed = seed;
  req.n = n;
  return req;
}

} // namespace

CAF_TEST(n sequences share the prompt pages and are reproducible) {
  auto ckpt = open_fixture();
  engine_harness node{ckpt};
  auto a = node.generate(parallel_sampling(7, 4));
  auto b = node.generate(parallel_sampling(7, 4));
  CAF_REQUIRE(a && b);
  CAF_REQUIRE_EQUAL(a->sequences.size(), 4u);
  CAF_REQUIRE_EQUAL(a->finish_reasons.size(), 4u);
  CAF_CHECK_EQUAL(a->sequences, b->sequences);
  CAF_CHECK_EQUAL(a->new_tokens, a->sequences[0]);
  for (const auto& s : a->sequences)
    CAF_CHECK_EQUAL(s.size(), 12u);
  // Four random streams: the sequences differ.
  CAF_CHECK_NOT_EQUAL(a->sequences[0], a->sequences[1]);
  CAF_CHECK_NOT_EQUAL(a->sequences[2], a->sequences[3]);
  // Sequence 0 is what a request with n = 1 and the same seed gets.
  auto single = node.generate(parallel_sampling(7, 1));
  CAF_REQUIRE(single);
  CAF_CHECK_EQUAL(single->new_tokens, a->sequences[0]);
  CAF_CHECK(single->sequences.empty());
  // The 5-token prompt fills part of one page: the three forks shared it and
  // each copied it on its first write.
  CAF_CHECK_EQUAL(a->kv.copy_on_write, 3);
  CAF_CHECK_EQUAL(a->kv.pages_used, 4);
  // In a batch with other requests, the same seed gives the same sequences.
  auto batch = generate_together(
    node, {parallel_sampling(3, 2), parallel_sampling(7, 4),
           request_for({5, 6}, 20), parallel_sampling(7, 3)});
  CAF_CHECK_EQUAL(batch[1].sequences, a->sequences);
  CAF_REQUIRE_EQUAL(batch[3].sequences.size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    CAF_CHECK_EQUAL(batch[3].sequences[i], a->sequences[i]);
  // n out of range is refused with the field named.
  auto bad = node.generate(parallel_sampling(7, 0));
  CAF_REQUIRE(!bad);
  CAF_CHECK_NOT_EQUAL(describe(bad.error()).find("n: 0 sequences"),
                      std::string::npos);
}

CAF_TEST(preempted sequences resume and give the same answers) {
  auto ckpt = open_fixture();
  std::vector<generate_request> reqs;
  for (int i = 0; i < 6; ++i) {
    std::vector<int32_t> prompt;
    for (int j = 0; j < 5 + 3 * i; ++j)
      prompt.push_back((i * 53 + j * 11 + 1) % 320);
    reqs.push_back(request_for(prompt, 40));
  }
  // The n = 2 request forks too, and its sequences may be preempted.
  reqs.push_back(parallel_sampling(5, 2));
  reqs.back().max_new_tokens = 40;
  std::vector<generate_result> alone;
  {
    engine_harness roomy{ckpt};
    for (const auto& req : reqs) {
      auto res = roomy.generate(req);
      CAF_REQUIRE(res);
      alone.push_back(std::move(*res));
    }
  }
  // Pages of 4 tokens: each request alone needs at most 14 of the 16 pages,
  // together they need far more, so running sequences run out of pages.
  engine_options opts;
  opts.page_size = 4;
  opts.num_pages = 16;
  auto metrics = std::make_shared<node_metrics>("test");
  opts.metrics = metrics;
  engine_harness tight{ckpt, opts};
  auto together = generate_together(tight, reqs);
  int64_t preemptions = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    CAF_MESSAGE("request " << i << ": " << together[i].kv.preemptions
                           << " preemptions");
    CAF_CHECK_EQUAL(together[i].new_tokens, alone[i].new_tokens);
    CAF_CHECK_EQUAL(together[i].sequences, alone[i].sequences);
    CAF_CHECK_EQUAL(floats_of(together[i].last_logits),
                    floats_of(alone[i].last_logits));
    preemptions += together[i].kv.preemptions;
  }
  CAF_CHECK_GREATER(preemptions, 0);
  auto text
    = prometheus::TextSerializer{}.Serialize(metrics->registry()->Collect());
  CAF_CHECK_NOT_EQUAL(text.find("voltinfer_kv_preemptions_total{node=\"test\"} "
                                + std::to_string(preemptions)),
                      std::string::npos);
}
