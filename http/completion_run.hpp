#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "http/choice_output.hpp"
#include "http/engine_bridge.hpp"
#include "http/engine_requests.hpp"
#include "http/openai_response.hpp"
#include "net/metrics.hpp"

namespace volt::http {

/// One completion or chat request on its way through the engine: feeds the
/// engine's events into one choice_output per choice (prompt p's sequence s
/// is choice p * n + s), cancels a sequence whose text hit a stop string,
/// and reports what each choice releases, for a stream or a whole response.
class completion_run {
public:
  using clock = std::chrono::steady_clock;

  /// Receives what one choice released: new text, and its finish reason
  /// when it ended; `first` for the choice's first delta.
  using emit_fn = std::function<void(const choice_result& delta, bool first)>;

  completion_run(const completion_params& params, engine_requests requests,
                 std::shared_ptr<const served_model> model,
                 std::unique_ptr<generation> gen,
                 std::shared_ptr<node_metrics> metrics,
                 clock::time_point arrived);

  /// Waits up to `wait` for the engine's next event and applies it, calling
  /// `emit` per choice that released something. Returns false once every
  /// prompt has ended.
  bool step(std::chrono::milliseconds wait, const emit_fn& emit);

  /// Cancels every unfinished choice (the client went away).
  void cancel_all();

  /// The first error of a prompt that failed after the engine accepted it.
  const caf::error& error() const {
    return error_;
  }

  /// Every choice, whole (for a response that is not streamed).
  std::vector<choice_result> results() const;

  usage_counts usage() const;

  /// What the prompts' answers lost to experts without a live host.
  const degraded_summary& degraded() const {
    return degraded_;
  }

private:
  struct choice_state {
    choice_output out;
    std::string finish_reason;
    bool started = false;
    bool finished = false;
    clock::time_point last_token;
    /// The logprobs of out.tokens(), when asked for.
    std::vector<token_logprob> logprobs;
    /// Tokens whose ids and logprobs went out in a delta.
    size_t sent = 0;
  };

  void on_tokens(sequence_event& ev, const emit_fn& emit);

  /// Choice `index` carrying `text` and the ids and logprobs of its tokens
  /// [first, last).
  choice_result delta(size_t index, std::string text, size_t first,
                      size_t last) const;

  completion_params params_;
  engine_requests requests_;
  std::shared_ptr<const served_model> model_;
  std::unique_ptr<generation> gen_;
  std::shared_ptr<node_metrics> metrics_;
  clock::time_point arrived_;
  std::vector<choice_state> choices_;
  bool any_token_ = false;
  caf::error error_;
  degraded_summary degraded_;
};

} // namespace volt::http
