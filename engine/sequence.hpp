#pragma once

// The scheduler's records of requests and their sequences.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "actors/type_ids.hpp"
#include "caf/typed_response_promise.hpp"
#include "model/sampler.hpp"

namespace volt {

using engine_clock = std::chrono::steady_clock;

/// Seconds from `a` to `b`.
inline double seconds_between(engine_clock::time_point a,
                              engine_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

/// Sequences a request samples (n, at least 1).
inline uint32_t sequences_of(const generate_request& req) {
  return req.n > 1 ? req.n : 1;
}

/// A request waiting for its turn.
struct queued_generation {
  generate_request request;
  /// Answers a request sent with generate_atom; unused when `sink` is set.
  caf::typed_response_promise<generate_result> promise;
  engine_clock::time_point arrived;
  /// Receives a streamed request's chunks and its end; null when the answer
  /// goes to `promise`.
  stream_sink_actor sink;
  /// The request's id in effect: the client's, or one the scheduler picked.
  uint64_t id = 0;
  /// Why each sequence was cancelled (empty: it was not); sized n by the
  /// first cancel.
  std::vector<std::string> cancelled;

  /// Why sequence `index` was cancelled, or empty.
  const std::string& cancel_reason(uint32_t index) const {
    static const std::string none;
    return index < cancelled.size() ? cancelled[index] : none;
  }
};

/// A request being answered: what its sequences (one, or `n` for parallel
/// sampling) produced so far. The sequences share it.
struct request_group {
  queued_generation origin;
  /// The answer being built: prompt logits, routing, timings, KV usage; each
  /// sequence adds its tokens when it finishes.
  generate_result result;
  std::vector<float> all_logits; // [n_prompt, vocab] when asked
  std::vector<int32_t> routing; // [n_layers, n_prompt, k] when asked
  /// The prompt's logits are in `result` (and the other sequences forked).
  bool prefilled = false;
  /// Sequences running or preempted.
  size_t unfinished = 0;
  /// The promise was delivered (the answer, or the first error).
  bool answered = false;
  engine_clock::time_point started;
  engine_clock::time_point prefill_done;

  const generate_request& request() const {
    return origin.request;
  }
};

/// One sequence in the running batch (or preempted, waiting to resume).
struct running_sequence {
  std::shared_ptr<request_group> group;
  /// Which of the request's `n` sequences (also its random stream).
  uint32_t index = 0;
  std::vector<int32_t> tokens; // prompt followed by generated tokens
  int64_t prompt_len = 0;
  /// Tokens whose K/V are in the cache; the next step computes from here.
  int64_t computed = 0;
  /// Tokens the page table knows (the prompt, then sampled tokens as they
  /// are committed).
  int64_t announced = 0;
  /// This sequence's share of the request's KV usage.
  kv_usage kv;
  /// Draws the next tokens (its own random stream, from the request's seed).
  token_sampler sampler{0, 0};
  /// One entry per generated token when the request asked for logprobs.
  std::vector<token_logprob> logprobs;
  /// Some row of this sequence lost one of its chosen experts (degraded
  /// routing): its K/V, and every token it samples from then on, differ
  /// from full routing's.
  bool degraded = false;

  const generate_request& request() const {
    return group->request();
  }

  int64_t generated() const {
    return static_cast<int64_t>(tokens.size()) - prompt_len;
  }

  /// Why a client cancelled this sequence, or empty.
  const std::string& cancel_reason() const {
    return group->origin.cancel_reason(index);
  }
};

} // namespace volt
