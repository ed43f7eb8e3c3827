#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/reply_outbox.hpp"
#include "engine/sequence.hpp"
#include "model/model_config.hpp"
#include "model/page_table.hpp"
#include "model/step.hpp"
#include "net/metrics.hpp"

namespace volt {

/// Tunables of the scheduler (from [engine] and [kv_cache]).
struct scheduler_options {
  /// Requests waiting beyond the running batch; more are refused.
  size_t max_queue = 256;
  /// Sequences computed together in one step.
  size_t max_batch = 64;
  /// Prompt tokens of one sequence per step: long prompts are prefilled in
  /// chunks so that they do not stall the decodes running beside them.
  int64_t prefill_chunk = 512;
  /// Rows of one step at most (the executor's buffers); decodes take theirs
  /// first, prompt chunks share the rest.
  int64_t max_step_rows = INT64_MAX;
  /// Where the scheduler reports; may be null.
  std::shared_ptr<node_metrics> metrics;
};

/// Upper bound of generate_request::n.
constexpr uint32_t max_sequences_per_request = 64;

/// Continuous batching over a paged KV cache: the request queue, admission
/// (prefix reuse, headroom for the running sequences), each step's rows and
/// page writes (copy-on-write, preemption of the newest sequence when pages
/// run out), sampling, parallel sampling by forking, cancellation, and the
/// answers (streamed ones through `take_sink_messages`). A plain class owned
/// by the engine actor: every call is synchronous and cheap next to the step
/// it plans.
class scheduler {
public:
  /// A pool of `num_pages` pages of `page_size` tokens for `model`.
  scheduler(const model_config& model, int64_t page_size, int64_t num_pages,
            scheduler_options options);

  /// Checks a request against the model, the pool and the ids in use
  /// (invalid_request, one line naming the field).
  caf::error validate(const generate_request& req) const;

  /// Validates a request and queues it under its id (the request's own, or a
  /// fresh one); returns the id. Refuses it with `validate`'s error, or with
  /// queue_full when max_queue requests wait; refusals count as failed
  /// requests in the metrics.
  caf::expected<uint64_t> enqueue(queued_generation job);

  /// Ends sequences of request `c.id` with `c.reason`: queued requests and
  /// sequences outside the step in flight now, the others when it finishes
  /// (they sample no further token). Returns whether the request had
  /// unfinished sequences to end; an unknown or answered id is no error.
  /// Errors (invalid_request) name a bad reason or sequence.
  caf::expected<bool> cancel(const cancel_request& c);

  /// Cancels every request streamed to `sink` (it went down); returns their
  /// ids.
  std::vector<uint64_t> cancel_sink(const caf::actor_addr& sink);

  /// Messages for the sinks of streamed requests since the last call, in the
  /// order they were made.
  std::vector<sink_message> take_sink_messages() {
    return replies_.take();
  }

  /// Moves preempted sequences (first) and queued requests into the running
  /// batch while slots and pages allow; also while a step is in flight (its
  /// sequences' pages are not touched), so that a request waits in the
  /// queue only while the batch is full.
  void admit();

  /// Admits what fits (when `admit_more`), then plans the next step of the
  /// running batch; nothing when no sequence runs.
  std::optional<step_request> next_step(bool admit_more);

  /// Takes the outputs of the step `next_step` planned: new tokens, finished
  /// sequences and their answers, forks. `masked` are the experts the step
  /// ran without (step_request::masked_experts): sequences whose rows lost
  /// one (result.degraded_rows) are degraded from then on.
  void finish_step(step_result& result,
                   const std::vector<uint32_t>& masked = {});

  /// Whether admission reuses K/V from the prefix cache. The engine turns it
  /// off while experts are masked, so that a degraded answer is computed
  /// whole under the routing of its own time.
  void reuse_prefixes(bool on) {
    reuse_prefixes_ = on;
  }

  /// Fails every sequence of the step in flight with `err`.
  void fail_step(const caf::error& err);

  /// Fails queued requests that waited at least `limit` with `err` (used
  /// while experts have no live host).
  void expire_queued(std::chrono::milliseconds limit, const caf::error& err);

  /// Fails every queued, preempted and running request with `err` (the node
  /// stops); a step in flight must have been abandoned.
  void fail_all(const caf::error& err);

  /// Nothing queued, preempted or running.
  bool idle() const {
    return queue_.empty() && preempted_.empty() && running_.empty();
  }

  bool has_queued() const {
    return !queue_.empty();
  }

  /// Requests waiting for a batch slot and preempted sequences waiting to
  /// resume: the queue depth the metrics report.
  size_t waiting() const {
    return queue_.size() + preempted_.size();
  }

  /// Sequences in the running batch.
  size_t running() const {
    return running_.size();
  }

  /// "3 completed, 1 cancelled, 0 failed, ... (0 preemptions)".
  std::string status() const;

  /// Fills the queue's counters and lists the requests not answered yet,
  /// oldest first, with their progress at `now` (for an operator; walks every
  /// request, so only on request).
  void report(queue_entry& queue, std::vector<request_entry>& requests,
              engine_clock::time_point now) const;

  const page_table& pages() const {
    return pages_;
  }

private:
  /// Counts a request refused before it was queued; returns `err`.
  caf::error refuse(caf::error err);
  running_sequence start_request(queued_generation origin);
  /// The request with id `id` in the queue or answered by nothing yet.
  const queued_generation* find_request(uint64_t id) const;
  /// The group of request `id` among running and preempted sequences, or null.
  request_group* live_group(uint64_t id);
  /// Answers a queued request whose every sequence was cancelled.
  void answer_unstarted(queued_generation job);
  /// Finishes cancelled sequences that are outside the step in flight and
  /// not computing a prompt that uncancelled siblings will fork from.
  void drop_cancelled();
  bool in_step(uint64_t id) const;
  void preempt(uint64_t id);
  /// Fails the queue's first request with `err`.
  void fail_front(const caf::error& err);
  void fail_group(request_group& g, const caf::error& err);
  /// Fails `g` and removes every sequence of it, running or preempted.
  void drop_group(std::shared_ptr<request_group> g, const caf::error& err);
  /// A non_finite error when the sampled row of sequence `id` has a NaN or
  /// an infinity among its `logits` (may be null) or the executor's greedy
  /// pick says so (`greedy_failed`).
  caf::error check_logits(uint64_t id, const running_sequence& seq,
                          const float* logits, bool greedy_failed) const;
  void answer_group(request_group& g);
  /// A sequence leaves (finished, failed or dropped); `holds_pages`: its
  /// pages go back to the pool.
  void retire(running_sequence& seq, bool holds_pages, uint64_t id);
  void finish_sequence(uint64_t id, const std::string& why);
  /// Moves what `seq` produced into its request's answer.
  void record_finish(uint64_t id, running_sequence& seq,
                     const std::string& why);
  /// Streams `seq`'s newest token (when `token`) and `finish` to its sink.
  void emit(const running_sequence& seq, bool token,
            const std::string& finish);
  /// Samples the next token of a sequence whose step ended at its last
  /// token (unless it was cancelled), commits it, streams it, and finishes
  /// the sequence when it stops.
  void sample_next(uint64_t id, running_sequence& seq, const float* logits,
                   int32_t greedy);
  void finish_prompt(uint64_t id, running_sequence& seq, const float* logits);
  /// Marks `seq` degraded by a step that ran without `masked`.
  void degrade(running_sequence& seq, const std::vector<uint32_t>& masked);
  /// Commits the K/V computed so far and the tokens sampled since the last
  /// commit to the page table (full pages enter the prefix cache).
  void commit(uint64_t id, running_sequence& seq);
  /// Picks the next token from `logits` (null: greedy, `greedy` is it);
  /// returns why the sequence stops, or empty.
  std::string advance(running_sequence& seq, const float* logits,
                      int32_t greedy);
  void report_queue();

  /// One sequence's rows in the step in flight.
  struct step_entry {
    uint64_t id;
    int64_t n_rows;
    int64_t first_row;
    /// Index of its prompt rows' logits in the result, or -1.
    int64_t first_logit = -1;
    /// Index of its sampled row in the result's logits or greedy tokens.
    int64_t sample_logit = -1;
    int64_t sample_greedy = -1;
  };

  model_config model_;
  scheduler_options options_;
  page_table pages_;
  std::deque<queued_generation> queue_;
  /// The running batch, by sequence id (ids grow with admission).
  std::map<uint64_t, running_sequence> running_;
  /// Sequences whose pages were taken for others; they resume (oldest id
  /// first, before new requests) by recomputing their tokens.
  std::map<uint64_t, running_sequence> preempted_;
  std::vector<step_entry> step_;
  reply_outbox replies_;
  uint64_t next_sequence_ = 1;
  uint64_t next_request_id_ = 1;
  uint64_t completed_ = 0;
  uint64_t cancelled_ = 0;
  uint64_t failed_ = 0;
  uint64_t refused_ = 0;
  uint64_t preemptions_ = 0;
  bool reuse_prefixes_ = true;
};

} // namespace volt
