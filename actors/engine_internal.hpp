#pragma once

// Internals of the engine actor shared by its source files: engine.cpp
// (requests, expert hosts, timers), engine_admission.cpp (admission,
// preemption, answers), engine_batch.cpp (a step of the running batch: KV
// plans, sampling, forks) and engine_dispatch.cpp (one layer's routing and
// expert dispatch with failover).

#include "actors/engine.hpp"

namespace volt::engine_detail {

using clock_type = std::chrono::steady_clock;

inline double seconds_between(clock_type::time_point a,
                              clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

/// The sampler's parameters of a request.
inline sampling_params sampling_of(const generate_request& req) {
  return sampling_params{req.temperature, req.top_p, req.seed};
}

/// Starts the next step (or admission) unless one is in flight.
void schedule(engine_pointer self);

/// Schedules the engine's timer unless it is pending: it expires requests
/// waiting on missing experts and gating or expert requests of the step in
/// flight that took longer than step_timeout.
void schedule_tick(engine_pointer self);

/// Reports the queue depth (waiting and preempted sequences) to the metrics.
void report_queue(engine_state& st);

/// Answers every drain waiter once nothing is queued, preempted or running.
void notify_drained(engine_state& st);

/// Moves the next preempted sequence (first) or queued request into the
/// running batch when a slot and KV pages allow; asynchronous, calls
/// `schedule` again once the page manager answered.
void admit(engine_pointer self);

/// Moves a sequence the page manager preempted out of the running batch; it
/// resumes later by recomputing its tokens.
void preempt(engine_state& st, uint64_t id);

/// Answers the request of `g` with `err` unless it was answered already.
void fail_group(engine_state& st, request_group& g, const caf::error& err);

/// A sequence leaves the engine (finished, failed or dropped): its request
/// counts it and is answered after its last sequence; a sequence that
/// `holds_pages` has them released with the next KV sync.
void retire(engine_state& st, running_sequence& seq, bool holds_pages,
            uint64_t id);

/// Runs layer `layer` of the current step: attention here, then routing and
/// expert dispatch; continues with the next layer or `finish_step`.
void run_layer(engine_pointer self, int64_t layer);

/// All layers of the current step are done: logits, sampling, next step.
void finish_step(engine_pointer self);

/// Fails every sequence of the current step with `err`; the engine goes on
/// with what remains queued.
void fail_step(engine_pointer self, const caf::error& err);

/// Fails the step in flight when its gating request is overdue, and re-sends
/// the overdue parts of its expert dispatch to replicas (step_timeout).
void expire_overdue(engine_pointer self);

/// A monitored expert host died: forget it and re-send its outstanding rows.
void on_host_down(engine_pointer self, const caf::down_msg& msg);

/// "no live host for experts 4, 5<context>".
caf::error missing_experts_error(const std::vector<uint32_t>& missing,
                                 const std::string& context);

} // namespace volt::engine_detail
