#define CAF_SUITE engine.scheduler

// The scheduler as a plain class driven step by step over the CPU executor:
// streamed chunks, cancellation (whole requests, one sequence, during a step,
// in the queue, during the prompt) and the KV pages it frees, logprobs against
// log_softmax of logits computed here, stop token ids and request validation.

#include "engine/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "actors/standalone.hpp"
#include "base/error.hpp"
#include "tests/engine_harness.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// A sink that is never sent to: the test takes the scheduler's messages
/// itself.
stream_sink_actor::behavior_type idle_sink() {
  return {
    [](const generate_chunk&) {},
    [](const generate_end&) {},
  };
}

/// A scheduler over a CPU executor for the tiny fixture, stepped by hand.
struct stepper {
  explicit stepper(int64_t num_pages = 64, scheduler_options opts = {})
    : ckpt(open_fixture()), sys(cfg) {
    standalone_options where;
    where.engine.num_pages = num_pages;
    auto made = make_executor(ckpt, where, true);
    if (!made)
      CAF_FAIL(describe(made.error()));
    exec = std::move(*made);
    opts.max_step_rows = exec->max_step_rows();
    sched = std::make_unique<scheduler>(ckpt.config(), exec->page_size(),
                                        exec->num_pages(), opts);
    sink = sys.spawn(idle_sink);
  }

  ~stepper() {
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  }

  /// Queues a streamed request; returns its id or why it was refused.
  caf::expected<uint64_t> try_submit(generate_request req) {
    queued_generation job;
    job.request = std::move(req);
    job.arrived = engine_clock::now();
    job.sink = sink;
    return sched->enqueue(std::move(job));
  }

  /// Queues a streamed request and returns its id.
  uint64_t submit(generate_request req) {
    auto id = try_submit(std::move(req));
    if (!id)
      CAF_FAIL(describe(id.error()));
    return *id;
  }

  /// Runs the executor on the planned step and hands back its outputs,
  /// after `edit` changed them (a test's broken executor).
  void finish(step_request req,
              const std::function<void(step_result&)>& edit = nullptr) {
    auto progress = exec->start(std::move(req));
    if (!progress)
      CAF_FAIL(describe(progress.error()));
    CAF_REQUIRE(!progress->needs);
    if (edit)
      edit(progress->result);
    sched->finish_step(progress->result);
    collect();
  }

  /// One step, its outputs changed by `edit`; false when nothing runs.
  bool step(const std::function<void(step_result&)>& edit = nullptr) {
    auto req = sched->next_step(true);
    collect();
    if (!req)
      return false;
    finish(std::move(*req), edit);
    return true;
  }

  void run() {
    while (step()) {
    }
  }

  void collect() {
    for (auto& msg : sched->take_sink_messages()) {
      if (auto* c = std::get_if<generate_chunk>(&msg.content))
        chunks.push_back(std::move(*c));
      else
        ends.push_back(std::get<generate_end>(std::move(msg.content)));
    }
  }

  /// Chunks of sequence `index` of request `id`.
  std::vector<generate_chunk> chunks_of(uint64_t id, uint32_t index) const {
    std::vector<generate_chunk> out;
    for (const auto& c : chunks)
      if (c.id == id && c.sequence == index)
        out.push_back(c);
    return out;
  }

  /// The answer of request `id` (the test fails without one).
  const generate_result& result_of(uint64_t id) const {
    for (const auto& e : ends)
      if (e.id == id) {
        if (e.error)
          CAF_FAIL(describe(e.error));
        return e.result;
      }
    CAF_FAIL("no answer for request " << id);
  }

  /// The error that ended request `id` (none when it was answered).
  caf::error error_of(uint64_t id) const {
    for (const auto& e : ends)
      if (e.id == id)
        return e.error;
    CAF_FAIL("no answer for request " << id);
  }

  /// Cancels and returns whether sequences were left to end (the test fails
  /// on an error).
  bool cancel(uint64_t id, std::string reason = "", int32_t sequence = -1) {
    auto found = sched->cancel(cancel_request{id, std::move(reason), sequence});
    if (!found)
      CAF_FAIL(describe(found.error()));
    return *found;
  }

  int64_t pages_used() const {
    return sched->pages().stats().pages_used;
  }

  checkpoint ckpt;
  volt_system_config cfg;
  caf::actor_system sys;
  std::shared_ptr<model_executor> exec;
  std::unique_ptr<scheduler> sched;
  stream_sink_actor sink;
  std::vector<generate_chunk> chunks;
  std::vector<generate_end> ends;
};

std::vector<int32_t> varied_prompt(int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i)
    out.push_back((i * 37 + 11) % 320);
  return out;
}

/// `n` sequences sampled at temperature 1 after `prompt`.
generate_request sampled(std::vector<int32_t> prompt, uint32_t new_tokens,
                         uint64_t seed, uint32_t n) {
  auto req = request_for(std::move(prompt), new_tokens);
  req.temperature = 1;
  req.seed = seed;
  req.n = n;
  return req;
}

/// Tokens of a sequence's chunks, and checks that only its last chunk has a
/// finish reason.
std::vector<int32_t> streamed_tokens(const std::vector<generate_chunk>& cs) {
  std::vector<int32_t> out;
  for (size_t i = 0; i < cs.size(); ++i) {
    out.insert(out.end(), cs[i].tokens.begin(), cs[i].tokens.end());
    CAF_CHECK_EQUAL(cs[i].finish_reason.empty(), i + 1 < cs.size());
  }
  return out;
}

/// log_softmax of one row, in double.
std::vector<double> log_softmax(const float* row, int64_t vocab) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < vocab; ++i)
    mx = std::max(mx, static_cast<double>(row[i]));
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i)
    sum += std::exp(static_cast<double>(row[i]) - mx);
  std::vector<double> out(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i)
    out[static_cast<size_t>(i)] = static_cast<double>(row[i]) - mx
                                  - std::log(sum);
  return out;
}

/// Logits at every position of `tokens`, from one prefill of them all on a
/// fresh CPU executor: [n, vocab].
std::vector<float> reference_logits(const checkpoint& ckpt,
                                    const std::vector<int32_t>& tokens) {
  auto exec = make_executor(ckpt, standalone_options{}, true);
  CAF_REQUIRE(exec);
  auto n = static_cast<int64_t>(tokens.size());
  step_request req;
  auto& b = req.batch;
  b.token_ids = tokens;
  step_batch::sequence seq{0, n, {}};
  for (int64_t p = 0; p * (*exec)->page_size() < n; ++p)
    seq.block_table.push_back(static_cast<int32_t>(p));
  b.sequences.push_back(seq);
  for (int64_t i = 0; i < n; ++i) {
    b.positions.push_back(static_cast<int32_t>(i));
    req.logit_rows.push_back(i);
  }
  auto progress = (*exec)->start(std::move(req));
  CAF_REQUIRE(progress && !progress->needs);
  return std::move(progress->result.logits);
}

/// Checks every token's logprob and top list against log_softmax of the
/// reference logits at its position.
void check_logprobs(const checkpoint& ckpt, const std::vector<int32_t>& prompt,
                    const std::vector<int32_t>& generated,
                    const std::vector<token_logprob>& logprobs, int32_t top_n,
                    bool greedy) {
  CAF_REQUIRE_EQUAL(logprobs.size(), generated.size());
  auto all = prompt;
  all.insert(all.end(), generated.begin(), generated.end());
  auto vocab = ckpt.config().vocab_size;
  auto logits = reference_logits(ckpt, all);
  double worst = 0;
  for (size_t i = 0; i < generated.size(); ++i) {
    auto row = prompt.size() - 1 + i;
    auto ref = log_softmax(logits.data() + row * vocab, vocab);
    const auto& lp = logprobs[i];
    CAF_CHECK_EQUAL(lp.token, generated[i]);
    worst = std::max(worst, std::abs(lp.logprob - ref[generated[i]]));
    // The reference's top_n, most likely first.
    std::vector<int32_t> order(static_cast<size_t>(vocab));
    for (int32_t t = 0; t < vocab; ++t)
      order[t] = t;
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return ref[a] > ref[b]; });
    CAF_REQUIRE_EQUAL(lp.top.size(), static_cast<size_t>(top_n));
    for (size_t j = 0; j < lp.top.size(); ++j) {
      CAF_CHECK_EQUAL(lp.top[j].token, order[j]);
      worst = std::max(worst, std::abs(lp.top[j].logprob - ref[order[j]]));
      if (j > 0)
        CAF_CHECK_GREATER_OR_EQUAL(lp.top[j - 1].logprob, lp.top[j].logprob);
    }
    if (greedy)
      CAF_CHECK_EQUAL(lp.top.front().token, generated[i]);
  }
  CAF_MESSAGE("worst logprob error against log_softmax: " << sci(worst));
  CAF_CHECK_LESS_OR_EQUAL(worst, 1e-4);
}

} // namespace

CAF_TEST(streamed chunks carry every token in order and end with the answer) {
  stepper s;
  auto id = s.submit(sampled({9, 41, 7, 200, 13}, 6, 3, 2));
  s.run();
  const auto& res = s.result_of(id);
  CAF_REQUIRE_EQUAL(res.sequences.size(), 2u);
  for (uint32_t i = 0; i < 2; ++i) {
    auto cs = s.chunks_of(id, i);
    CAF_CHECK_EQUAL(streamed_tokens(cs), res.sequences[i]);
    CAF_CHECK_EQUAL(cs.back().finish_reason, "length");
    CAF_CHECK_EQUAL(cs.back().openai_finish_reason, "length");
  }
  CAF_CHECK_EQUAL(res.openai_finish_reasons,
                  std::vector<std::string>({"length", "length"}));
  CAF_CHECK_EQUAL(res.prompt_tokens, 5);
  CAF_CHECK_EQUAL(res.completion_tokens, 12);
  CAF_CHECK(res.logprobs.empty());
  CAF_CHECK_EQUAL(s.pages_used(), 0);
}

CAF_TEST(cancelling a request frees its pages and answers cancelled) {
  stepper s;
  auto id = s.submit(request_for(varied_prompt(40), 200));
  for (int i = 0; i < 5; ++i)
    CAF_REQUIRE(s.step());
  CAF_CHECK_GREATER(s.pages_used(), 0);
  CAF_CHECK(s.ends.empty());
  CAF_CHECK(s.cancel(id));
  s.collect();
  CAF_CHECK_EQUAL(s.pages_used(), 0);
  CAF_CHECK(s.sched->idle());
  const auto& res = s.result_of(id);
  CAF_CHECK_EQUAL(res.finish_reason, "cancelled");
  CAF_CHECK_EQUAL(res.openai_finish_reasons,
                  std::vector<std::string>({"cancelled"}));
  CAF_CHECK_EQUAL(res.new_tokens.size(), 5u); // one per step
  auto cs = s.chunks_of(id, 0);
  CAF_CHECK_EQUAL(streamed_tokens(cs), res.new_tokens);
  CAF_CHECK(cs.back().tokens.empty());
  CAF_CHECK_EQUAL(cs.back().finish_reason, "cancelled");
  CAF_CHECK(s.sched->status().find("1 cancelled") != std::string::npos);
  // Cancelling again, or an unknown id, does nothing.
  CAF_CHECK(!s.cancel(id, "", -1));
  CAF_CHECK(!s.cancel(id + 100, "", -1));
  CAF_CHECK_EQUAL(s.ends.size(), 1u);
  CAF_CHECK(!s.step());
}

CAF_TEST(a cancel during a step ends the sequence at the step boundary) {
  stepper s;
  auto id = s.submit(request_for({203}, 50));
  for (int i = 0; i < 3; ++i)
    CAF_REQUIRE(s.step());
  auto req = s.sched->next_step(true);
  CAF_REQUIRE(req);
  // The executor owns the sequence's pages until the step ends.
  CAF_CHECK(s.cancel(id, "stop", -1));
  s.collect();
  CAF_CHECK(s.ends.empty());
  CAF_CHECK_GREATER(s.pages_used(), 0);
  s.finish(std::move(*req));
  const auto& res = s.result_of(id);
  // The step in flight sampled nothing more: three tokens, as before it.
  CAF_CHECK_EQUAL(res.new_tokens, std::vector<int32_t>({170, 288, 170}));
  CAF_CHECK_EQUAL(res.finish_reason, "stop");
  CAF_CHECK_EQUAL(res.openai_finish_reasons,
                  std::vector<std::string>({"stop"}));
  CAF_CHECK_EQUAL(s.pages_used(), 0);
}

CAF_TEST(one of n sequences stops while the other goes on) {
  stepper s;
  auto req = sampled({9, 41, 7, 200, 13}, 8, 5, 2);
  auto both = s.submit(req);
  s.run();
  auto want = s.result_of(both).sequences;
  auto id = s.submit(req);
  for (int i = 0; i < 3; ++i)
    CAF_REQUIRE(s.step());
  CAF_CHECK(s.cancel(id, "stop", 1));
  s.run();
  const auto& res = s.result_of(id);
  CAF_CHECK_EQUAL(res.sequences[0], want[0]);
  CAF_CHECK_EQUAL(res.sequences[1],
                  std::vector<int32_t>(want[1].begin(), want[1].begin() + 3));
  CAF_CHECK_EQUAL(res.finish_reasons,
                  std::vector<std::string>({"length", "stop"}));
  // The chunks live in a local: CAF_CHECK_EQUAL binds a reference to its
  // argument, and one into a temporary vector would dangle.
  auto chunks = s.chunks_of(id, 1);
  CAF_CHECK_EQUAL(chunks.back().finish_reason, "stop");
  CAF_CHECK_EQUAL(s.pages_used(), 0);
  // A sequence out of range and an unknown reason are refused.
  auto again = s.submit(req);
  auto bad_seq = s.sched->cancel(cancel_request{again, "", 2});
  CAF_REQUIRE(!bad_seq);
  CAF_CHECK(bad_seq.error() == volt_errc::invalid_request);
  CAF_CHECK_EQUAL(describe(bad_seq.error()),
                  "cancel: sequence 2 of request " + std::to_string(again)
                    + ", which has 2 (-1 cancels all)");
  auto bad_reason = s.sched->cancel(cancel_request{again, "later", -1});
  CAF_REQUIRE(!bad_reason);
  CAF_CHECK_EQUAL(describe(bad_reason.error()),
                  "cancel: reason 'later' (must be \"cancelled\" or \"stop\")");
}

CAF_TEST(cancelling sequence zero during the prompt keeps its siblings) {
  scheduler_options opts;
  opts.prefill_chunk = 8; // 40 prompt tokens take five steps
  auto req = sampled(varied_prompt(40), 6, 9, 3);
  // A scheduler of its own: here, the prompt's pages would come from the
  // prefix cache.
  stepper ref{64, opts};
  auto whole = ref.submit(req);
  ref.run();
  auto want = ref.result_of(whole).sequences;
  stepper s{64, opts};
  auto id = s.submit(req);
  CAF_REQUIRE(s.step());
  CAF_CHECK(s.cancel(id, "", 0));
  CAF_CHECK(s.cancel(id, "", 2));
  s.run();
  const auto& res = s.result_of(id);
  CAF_CHECK(res.sequences[0].empty());
  CAF_CHECK_EQUAL(res.sequences[1], want[1]);
  CAF_CHECK(res.sequences[2].empty());
  CAF_CHECK_EQUAL(res.finish_reasons,
                  std::vector<std::string>({"cancelled", "length",
                                            "cancelled"}));
  for (uint32_t i : {0u, 2u}) {
    auto cs = s.chunks_of(id, i);
    CAF_REQUIRE_EQUAL(cs.size(), 1u);
    CAF_CHECK(cs[0].tokens.empty());
    CAF_CHECK_EQUAL(cs[0].finish_reason, "cancelled");
  }
  CAF_CHECK_EQUAL(s.pages_used(), 0);
  // All of them cancelled during the prompt: the answer comes at once.
  auto other = req;
  std::reverse(other.prompt.begin(), other.prompt.end());
  auto gone = s.submit(other);
  CAF_REQUIRE(s.step());
  CAF_CHECK(s.cancel(gone, "", -1));
  s.collect();
  const auto& none = s.result_of(gone);
  CAF_CHECK_EQUAL(none.finish_reasons,
                  std::vector<std::string>(3, "cancelled"));
  CAF_CHECK_EQUAL(none.completion_tokens, 0);
  for (uint32_t i = 0; i < 3; ++i)
    CAF_CHECK_EQUAL(s.chunks_of(gone, i).size(), 1u);
  CAF_CHECK_EQUAL(s.pages_used(), 0);
  CAF_CHECK(s.sched->idle());
}

CAF_TEST(a queued request cancelled before it runs is answered at once) {
  scheduler_options opts;
  opts.max_batch = 1;
  stepper s{64, opts};
  auto first = s.submit(request_for({203}, 20));
  auto second = s.submit(request_for({5, 6}, 20));
  CAF_REQUIRE(s.step());
  CAF_CHECK(s.cancel(second, "", -1));
  s.collect();
  const auto& res = s.result_of(second);
  CAF_CHECK(res.new_tokens.empty());
  CAF_CHECK_EQUAL(res.finish_reason, "cancelled");
  CAF_CHECK_EQUAL(s.chunks_of(second, 0).size(), 1u);
  s.run();
  CAF_CHECK_EQUAL(s.result_of(first).new_tokens.size(), 20u);
  CAF_CHECK(s.sched->status().find("1 completed, 1 cancelled")
            != std::string::npos);
}

CAF_TEST(requests streamed to a sink that went down are cancelled) {
  stepper s;
  auto a = s.submit(request_for({203}, 30));
  auto b = s.submit(request_for({5, 6, 7}, 30));
  CAF_REQUIRE(s.step());
  auto ids = s.sched->cancel_sink(s.sink.address());
  std::sort(ids.begin(), ids.end());
  CAF_CHECK_EQUAL(ids, std::vector<uint64_t>({a, b}));
  s.collect();
  CAF_CHECK_EQUAL(s.result_of(a).finish_reason, "cancelled");
  CAF_CHECK_EQUAL(s.result_of(b).finish_reason, "cancelled");
  CAF_CHECK_EQUAL(s.pages_used(), 0);
  CAF_CHECK(s.sched->idle());
}

CAF_TEST(logprobs equal log_softmax of the logits computed here) {
  stepper s;
  auto prompt = varied_prompt(12);
  auto greedy = request_for(prompt, 8);
  greedy.logprobs = 5;
  auto g = s.submit(greedy);
  auto sampled = request_for(prompt, 8);
  sampled.logprobs = 3;
  sampled.temperature = 0.7f;
  sampled.top_p = 0.9f;
  sampled.seed = 4;
  sampled.n = 2;
  auto t = s.submit(sampled);
  s.run();
  const auto& rg = s.result_of(g);
  CAF_REQUIRE_EQUAL(rg.logprobs.size(), 1u);
  check_logprobs(s.ckpt, prompt, rg.new_tokens, rg.logprobs[0], 5, true);
  // Streamed chunks carry the same entries.
  std::vector<token_logprob> streamed;
  for (const auto& c : s.chunks_of(g, 0)) {
    CAF_CHECK_EQUAL(c.logprobs.size(), c.tokens.size());
    streamed.insert(streamed.end(), c.logprobs.begin(), c.logprobs.end());
  }
  CAF_REQUIRE_EQUAL(streamed.size(), rg.logprobs[0].size());
  for (size_t i = 0; i < streamed.size(); ++i) {
    CAF_CHECK_EQUAL(streamed[i].token, rg.logprobs[0][i].token);
    CAF_CHECK_EQUAL(streamed[i].logprob, rg.logprobs[0][i].logprob);
  }
  // Sampled tokens: the model's distribution (temperature 1, no top_p).
  const auto& rt = s.result_of(t);
  CAF_REQUIRE_EQUAL(rt.logprobs.size(), 2u);
  for (size_t i = 0; i < 2; ++i)
    check_logprobs(s.ckpt, prompt, rt.sequences[i], rt.logprobs[i], 3, false);
}

CAF_TEST(stop token ids end a sequence and map to openai words) {
  stepper s;
  auto req = request_for({203}, 10);
  req.stop_token_ids = {288};
  auto id = s.submit(req);
  // The greedy continuation of 203 is 170 288 170 ...; at the context limit
  // a sequence finishes "context", which OpenAI calls "length".
  auto full = s.submit(request_for(std::vector<int32_t>(1020, 7), 50));
  s.run();
  const auto& res = s.result_of(id);
  CAF_CHECK_EQUAL(res.new_tokens, std::vector<int32_t>({170, 288}));
  CAF_CHECK_EQUAL(res.finish_reason, "stop");
  CAF_CHECK_EQUAL(res.openai_finish_reasons,
                  std::vector<std::string>({"stop"}));
  const auto& ctx = s.result_of(full);
  CAF_CHECK_EQUAL(ctx.finish_reason, "context");
  CAF_CHECK_EQUAL(ctx.openai_finish_reasons,
                  std::vector<std::string>({"length"}));
  auto chunks = s.chunks_of(full, 0);
  CAF_CHECK_EQUAL(chunks.back().openai_finish_reason, "length");
}

CAF_TEST(bad logprobs stop token ids and ids are refused naming the field) {
  stepper s;
  auto check = [&](generate_request req, const std::string& want) {
    auto err = s.sched->validate(req);
    CAF_CHECK(err == volt_errc::invalid_request);
    CAF_CHECK_EQUAL(describe(err), want);
  };
  auto req = request_for({203}, 4);
  req.logprobs = 21;
  check(req, "logprobs: 21; must be in [0, 20] (0 leaves them out)");
  req.logprobs = -1;
  check(req, "logprobs: -1; must be in [0, 20] (0 leaves them out)");
  req.logprobs = 20;
  CAF_CHECK(!s.sched->validate(req));
  req.stop_token_ids = {2, 320};
  check(req, "stop_token_ids: token id 320 at index 1 is outside [0, 320)");
  req.stop_token_ids.clear();
  req.id = 2;
  CAF_CHECK_EQUAL(s.submit(req), 2u);
  check(req, "id: 2 belongs to a request still in the engine; pick another");
  // Ids the scheduler picks skip the ones clients chose.
  auto own = request_for({203}, 4);
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(s.submit(own));
  CAF_CHECK_EQUAL(ids, std::vector<uint64_t>({1, 3, 4}));
  s.run();
  // Once answered, an id is free again.
  CAF_CHECK(!s.sched->validate(req));
}

CAF_TEST(refused requests count as errors and a full queue has its own code) {
  scheduler_options opts;
  opts.max_queue = 1;
  opts.metrics = std::make_shared<node_metrics>("t");
  stepper s{64, opts};
  auto bad = s.try_submit(request_for({}, 4));
  CAF_REQUIRE(!bad);
  CAF_CHECK(bad.error() == volt_errc::invalid_request);
  s.submit(request_for({203}, 4));
  auto full = s.try_submit(request_for({203}, 4));
  CAF_REQUIRE(!full);
  CAF_CHECK(full.error() == volt_errc::queue_full);
  CAF_CHECK_EQUAL(describe(full.error()),
                  "engine: queue full (1 requests waiting); try again later");
  CAF_CHECK_EQUAL(requests_total(*opts.metrics, "error"), 2.0);
  s.run();
  CAF_CHECK_EQUAL(requests_total(*opts.metrics, "ok"), 1.0);
  CAF_CHECK_EQUAL(requests_total(*opts.metrics, "error"), 2.0);
  CAF_CHECK_NOT_EQUAL(s.sched->status().find("2 refused"), std::string::npos);
}

CAF_TEST(non finite logits fail the request instead of making a token) {
  scheduler_options opts;
  opts.metrics = std::make_shared<node_metrics>("t");
  stepper s{64, opts};
  // Sampled with a temperature: the scheduler sees the logits.
  auto req = sampled({203, 5}, 4, 1, 2);
  auto id = s.submit(req);
  CAF_REQUIRE(s.step([](step_result& r) { r.logits.back() = NAN; }));
  auto err = s.error_of(id);
  CAF_CHECK(err == volt_errc::non_finite);
  CAF_CHECK_EQUAL(describe(err),
                  "engine: request 1: the model computed NaN as the logit of "
                  "token 319 at position 1 (sequence 1); no token can be "
                  "sampled from it, the weights or the activations overflow");
  CAF_CHECK(s.chunks_of(id, 0).empty());
  CAF_CHECK_EQUAL(s.pages_used(), 0);
  CAF_CHECK(s.sched->idle());
  // Greedy decode steps return only the executor's pick, -1 for such a row.
  auto greedy = s.submit(request_for({203}, 4));
  CAF_REQUIRE(s.step());
  CAF_REQUIRE(s.step([](step_result& r) { r.greedy.at(0) = -1; }));
  err = s.error_of(greedy);
  CAF_CHECK(err == volt_errc::non_finite);
  CAF_CHECK_NOT_EQUAL(describe(err).find("computed a NaN or an infinity among "
                                         "the logits at position 1"),
                      std::string::npos);
  CAF_CHECK_EQUAL(s.pages_used(), 0);
  CAF_CHECK(s.sched->idle());
  CAF_CHECK_EQUAL(requests_total(*opts.metrics, "error"), 2.0);
  // The engine goes on: the next request is answered.
  auto next = s.submit(request_for({203}, 2));
  s.run();
  CAF_CHECK_EQUAL(s.result_of(next).new_tokens.size(), 2u);
}
