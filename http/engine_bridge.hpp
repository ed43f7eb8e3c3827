#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "actors/stream_messages.hpp"
#include "actors/type_ids.hpp"
#include "caf/actor.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"

namespace volt::http {

/// What the engine made for one sequence of one prompt since its last event.
struct sequence_event {
  /// Which engine request (prompt) of the HTTP request.
  size_t prompt = 0;
  /// The engine's chunk: the sequence, its new tokens (with logprobs when
  /// asked for) and, in its last chunk, why it stopped
  /// (openai_finish_reason: "stop", "length" or "cancelled").
  generate_chunk chunk;
};

/// The end of one prompt's engine request, after all its sequence events.
struct prompt_end {
  size_t prompt = 0;
  /// Set when the request failed after it was accepted.
  caf::error error;
  /// generate_result::degraded_experts and degraded_tokens of its answer.
  std::vector<uint32_t> degraded_experts;
  int64_t degraded_tokens = 0;
};

using engine_event = std::variant<sequence_event, prompt_end>;

/// A queue of engine events between the actors that receive them and the
/// HTTP thread that writes them out.
class event_queue {
public:
  void push(engine_event event);

  /// The next event, waiting up to `timeout`; nullopt when none came.
  std::optional<engine_event> pop(std::chrono::milliseconds timeout);

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<engine_event> events_;
};

/// The engine work of one HTTP request: one streamed engine request per
/// prompt, whose chunks arrive here as the engine makes them (through a sink
/// actor of its own). Destroying it cancels what is unfinished: the client
/// went away, or the handler gave up.
class generation {
public:
  generation(caf::actor_system& sys, engine_actor engine,
             std::vector<uint64_t> ids);
  ~generation();

  generation(const generation&) = delete;
  generation& operator=(const generation&) = delete;

  /// The next event, waiting up to `timeout`; nullopt when none came.
  std::optional<engine_event> next(std::chrono::milliseconds timeout);

  /// Ends sequence `sequence` (-1: all) of prompt `prompt` at the engine's
  /// next step, as "stop" (a stop string matched) or "cancelled" (the client
  /// left). Does not wait for the engine.
  void cancel(size_t prompt, int32_t sequence, const std::string& reason);

  /// Prompts whose prompt_end has not come yet.
  size_t unfinished() const {
    return unfinished_;
  }

private:
  friend class engine_bridge;

  caf::actor_system& sys_;
  engine_actor engine_;
  /// The engine's request id of each prompt.
  std::vector<uint64_t> ids_;
  std::shared_ptr<event_queue> queue_;
  /// Receives the chunks and ends of every prompt's request.
  stream_sink_actor sink_;
  size_t unfinished_ = 0;
};

/// Blocking access to the engine actor for HTTP threads (httplib runs each
/// connection on a thread of its own pool, so blocking one is fine).
class engine_bridge {
public:
  engine_bridge(caf::actor_system& sys, engine_actor engine);
  ~engine_bridge();

  engine_bridge(const engine_bridge&) = delete;
  engine_bridge& operator=(const engine_bridge&) = delete;

  /// Submits one streamed engine request per prompt; returns once the engine
  /// queued them all. Fails with the engine's refusal of any of them (queue
  /// full, a bad request), having cancelled the others.
  caf::expected<std::unique_ptr<generation>>
  start(std::vector<generate_request> requests);

  /// Whether the engine answered that every expert has a live host (and is
  /// still running).
  bool ready() const {
    return readiness_->state.load() == ready_state;
  }

  /// Calls `fn` once ready() holds: at once when it already does, else on
  /// the watcher's thread when the engine's answer arrives (never when the
  /// engine goes first). A node announces itself ready through this, so
  /// that a client who read the announcement finds the API serving.
  void when_ready(std::function<void()> fn);

private:
  static constexpr int waiting_state = 0;
  static constexpr int ready_state = 1;
  static constexpr int gone_state = 2;

  struct readiness {
    std::atomic<int> state{waiting_state};
    std::mutex mtx;
    std::vector<std::function<void()>> waiters;
  };

  caf::actor_system& sys_;
  engine_actor engine_;
  std::shared_ptr<readiness> readiness_;
  /// Watches readiness and the engine's life.
  caf::actor watcher_;
};

} // namespace volt::http
