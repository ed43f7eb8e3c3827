#define CAF_SUITE actors.stream

// Streaming and cancellation as a client of the engine actor sees them:
// streamed tokens equal the answer without streaming (greedy and sampled,
// n = 2, with logprobs), a cancel mid generation answers "cancelled" and
// frees the KV pages, a sink that goes away cancels its request, requests
// sent with generate_atom can be cancelled by their own id, and bad requests
// are refused before anything reaches the sink.

#include <condition_variable>
#include <mutex>
#include <optional>

#include "caf/typed_event_based_actor.hpp"
#include "tests/engine_harness.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// What a sink received, shared with the test's thread.
struct stream_log {
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<generate_chunk> chunks;
  std::optional<generate_end> end;

  /// Waits until `pred()` holds under the lock, at most 30 s.
  template <class Pred>
  bool wait(Pred pred) {
    std::unique_lock<std::mutex> guard{mtx};
    return cv.wait_for(guard, std::chrono::seconds{30}, pred);
  }

  bool wait_end() {
    return wait([this] { return end.has_value(); });
  }

  /// Tokens streamed for sequence `index`; checks that only its last chunk
  /// has a finish reason.
  std::vector<int32_t> tokens_of(uint32_t index) {
    std::lock_guard<std::mutex> guard{mtx};
    std::vector<const generate_chunk*> own;
    for (const auto& c : chunks)
      if (c.sequence == index)
        own.push_back(&c);
    std::vector<int32_t> out;
    for (size_t i = 0; i < own.size(); ++i) {
      out.insert(out.end(), own[i]->tokens.begin(), own[i]->tokens.end());
      CAF_CHECK_EQUAL(own[i]->finish_reason.empty(), i + 1 < own.size());
    }
    return out;
  }
};

/// Records chunks and the end; after `quit_after` chunks (0: never) it
/// quits, as a client that goes away.
stream_sink_actor::behavior_type
collecting_sink(stream_sink_actor::pointer self,
                std::shared_ptr<stream_log> log, size_t quit_after) {
  return {
    [=](generate_chunk& c) {
      std::lock_guard<std::mutex> guard{log->mtx};
      log->chunks.push_back(std::move(c));
      log->cv.notify_all();
      if (quit_after > 0 && log->chunks.size() >= quit_after)
        self->quit();
    },
    [=](generate_end& end) {
      std::lock_guard<std::mutex> guard{log->mtx};
      log->end = std::move(end);
      log->cv.notify_all();
    },
  };
}

/// A sink and its log.
struct sink_probe {
  sink_probe(caf::actor_system& sys, size_t quit_after = 0)
    : log(std::make_shared<stream_log>()),
      sink(sys.spawn(collecting_sink, log, quit_after)) {}

  std::shared_ptr<stream_log> log;
  stream_sink_actor sink;
};

/// Submits `req` streamed to `sink`; returns the id or the refusal.
caf::expected<uint64_t> submit(engine_harness& node, const generate_request& req,
                               const stream_sink_actor& sink) {
  caf::scoped_actor self{node.system()};
  caf::expected<uint64_t> id{caf::error{}};
  self->request(node.engine(), std::chrono::seconds{30}, stream_atom_v, req,
                sink)
    .receive([&](uint64_t x) { id = x; },
             [&](caf::error& err) { id = std::move(err); });
  return id;
}

/// Sends a cancel and returns the engine's answer.
caf::expected<bool> cancel(engine_harness& node, cancel_request c) {
  caf::scoped_actor self{node.system()};
  caf::expected<bool> found{caf::error{}};
  self->request(node.engine(), std::chrono::seconds{30}, cancel_atom_v, c)
    .receive([&](bool x) { found = x; },
             [&](caf::error& err) { found = std::move(err); });
  return found;
}

/// Waits until nothing runs, then returns the engine's status line.
std::string drained_status(engine_harness& node) {
  caf::scoped_actor self{node.system()};
  std::string status;
  self->request(node.engine(), std::chrono::seconds{30}, drain_atom_v)
    .receive([](bool) {}, [](caf::error& err) { CAF_FAIL(describe(err)); });
  self->request(node.engine(), std::chrono::seconds{30}, status_atom_v)
    .receive([&](std::string& x) { status = std::move(x); },
             [](caf::error& err) { CAF_FAIL(describe(err)); });
  CAF_MESSAGE(status);
  return status;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<int32_t> varied_prompt(int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i)
    out.push_back((i * 37 + 11) % 320);
  return out;
}

void check_same_logprobs(const std::vector<token_logprob>& x,
                         const std::vector<token_logprob>& y) {
  CAF_REQUIRE_EQUAL(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    CAF_CHECK_EQUAL(x[i].token, y[i].token);
    CAF_CHECK_EQUAL(x[i].logprob, y[i].logprob);
    CAF_REQUIRE_EQUAL(x[i].top.size(), y[i].top.size());
    for (size_t j = 0; j < x[i].top.size(); ++j)
      CAF_CHECK_EQUAL(x[i].top[j].token, y[i].top[j].token);
  }
}

} // namespace

CAF_TEST(streamed tokens equal the answer without streaming) {
  auto ckpt = open_fixture();
  engine_harness node{ckpt};
  auto greedy = request_for({203}, 12);
  greedy.logprobs = 2;
  auto sampled = request_for({9, 41, 7, 200, 13}, 10);
  sampled.temperature = 1;
  sampled.top_p = 0.9f;
  sampled.seed = 7;
  sampled.n = 2;
  sampled.logprobs = 4;
  for (const auto& req : {greedy, sampled}) {
    auto plain = node.generate(req);
    CAF_REQUIRE(plain);
    sink_probe probe{node.system()};
    auto id = submit(node, req, probe.sink);
    CAF_REQUIRE(id);
    CAF_REQUIRE(probe.log->wait_end());
    const auto& end = *probe.log->end;
    CAF_CHECK_EQUAL(end.id, *id);
    CAF_REQUIRE(!end.error);
    for (const auto& c : probe.log->chunks)
      CAF_CHECK_EQUAL(c.id, *id);
    const auto& res = end.result;
    CAF_CHECK_EQUAL(res.new_tokens, plain->new_tokens);
    CAF_CHECK_EQUAL(res.sequences, plain->sequences);
    CAF_CHECK_EQUAL(res.finish_reason, plain->finish_reason);
    CAF_CHECK_EQUAL(res.finish_reasons, plain->finish_reasons);
    CAF_CHECK_EQUAL(res.openai_finish_reasons, plain->openai_finish_reasons);
    for (uint32_t i = 0; i < req.n; ++i) {
      const auto& want = req.n == 1 ? plain->new_tokens : plain->sequences[i];
      CAF_CHECK_EQUAL(probe.log->tokens_of(i), want);
      std::vector<token_logprob> streamed;
      for (const auto& c : probe.log->chunks)
        if (c.sequence == i)
          streamed.insert(streamed.end(), c.logprobs.begin(), c.logprobs.end());
      check_same_logprobs(streamed, plain->logprobs[i]);
      check_same_logprobs(res.logprobs[i], plain->logprobs[i]);
    }
  }
}

CAF_TEST(a cancel mid generation answers cancelled and frees the pages) {
  auto ckpt = open_fixture();
  engine_harness node{ckpt};
  sink_probe probe{node.system()};
  auto id = submit(node, request_for(varied_prompt(40), 900), probe.sink);
  CAF_REQUIRE(id);
  CAF_REQUIRE(probe.log->wait([&] { return probe.log->chunks.size() >= 3; }));
  auto found = cancel(node, cancel_request{*id, "cancelled", -1});
  CAF_REQUIRE(found);
  CAF_CHECK(*found);
  CAF_REQUIRE(probe.log->wait_end());
  const auto& res = probe.log->end->result;
  CAF_CHECK_EQUAL(res.finish_reason, "cancelled");
  CAF_CHECK_LESS(res.new_tokens.size(), 900u);
  CAF_CHECK_EQUAL(probe.log->tokens_of(0), res.new_tokens);
  auto status = drained_status(node);
  CAF_CHECK(contains(status, "0 completed, 1 cancelled"));
  CAF_CHECK(contains(status, "(0 in use)"));
  // Cancelling an answered or unknown request does nothing.
  for (auto other : {*id, uint64_t{12345}}) {
    auto again = cancel(node, cancel_request{other, "", -1});
    CAF_CHECK(again && !*again);
  }
  auto bad = cancel(node, cancel_request{*id, "bored", -1});
  CAF_REQUIRE(!bad);
  CAF_CHECK(bad.error() == volt_errc::invalid_request);
}

CAF_TEST(a sink that goes away cancels its request) {
  auto ckpt = open_fixture();
  engine_harness node{ckpt};
  sink_probe probe{node.system(), 3};
  auto id = submit(node, request_for(varied_prompt(40), 900), probe.sink);
  CAF_REQUIRE(id);
  auto status = drained_status(node);
  CAF_CHECK(contains(status, "0 completed, 1 cancelled"));
  CAF_CHECK(contains(status, "(0 in use)"));
  // The engine serves on.
  auto after = node.generate(request_for({203}, 3));
  CAF_REQUIRE(after);
  CAF_CHECK_EQUAL(after->new_tokens, std::vector<int32_t>({170, 288, 170}));
}

CAF_TEST(a request sent with generate_atom is cancelled by its own id) {
  auto ckpt = open_fixture();
  engine_harness node{ckpt};
  caf::scoped_actor self{node.system()};
  auto req = request_for(varied_prompt(40), 900);
  req.id = 42;
  // One sender's messages arrive in order: the cancel finds the request.
  auto pending = self->request(node.engine(), std::chrono::seconds{30},
                               generate_atom_v, req);
  auto twin = self->request(node.engine(), std::chrono::seconds{30},
                            generate_atom_v, req);
  auto cancelled = self->request(node.engine(), std::chrono::seconds{30},
                                 cancel_atom_v, cancel_request{42, "stop", -1});
  twin.receive([](const generate_result&) { CAF_FAIL("expected an error"); },
               [](caf::error& err) {
                 CAF_CHECK_EQUAL(describe(err),
                                 "id: 42 belongs to a request still in the "
                                 "engine; pick another");
               });
  cancelled.receive([](bool found) { CAF_CHECK(found); },
                    [](caf::error& err) { CAF_FAIL(describe(err)); });
  pending.receive(
    [](const generate_result& res) {
      CAF_CHECK_EQUAL(res.finish_reason, "stop");
      CAF_CHECK_LESS(res.new_tokens.size(), 900u);
    },
    [](caf::error& err) { CAF_FAIL(describe(err)); });
  // Answered, the id is free again.
  auto again = request_for({203}, 2);
  again.id = 42;
  auto res = node.generate(again);
  CAF_REQUIRE(res);
  CAF_CHECK_EQUAL(res->finish_reason, "length");
}

CAF_TEST(bad requests are refused before anything reaches the sink) {
  auto ckpt = open_fixture();
  engine_harness node{ckpt};
  sink_probe probe{node.system()};
  auto req = request_for({203}, 4);
  req.logprobs = 21;
  auto refused = submit(node, req, probe.sink);
  CAF_REQUIRE(!refused);
  CAF_CHECK(refused.error() == volt_errc::invalid_request);
  CAF_CHECK_EQUAL(describe(refused.error()),
                  "logprobs: 21; must be in [0, 20] (0 leaves them out)");
  auto plain = node.generate(req);
  CAF_REQUIRE(!plain);
  CAF_CHECK(plain.error() == volt_errc::invalid_request);
  auto null_sink = submit(node, request_for({203}, 4), stream_sink_actor{});
  CAF_REQUIRE(!null_sink);
  CAF_CHECK_EQUAL(describe(null_sink.error()), "stream: the sink actor is null");
  drained_status(node);
  std::lock_guard<std::mutex> guard{probe.log->mtx};
  CAF_CHECK(probe.log->chunks.empty());
  CAF_CHECK(!probe.log->end);
}
