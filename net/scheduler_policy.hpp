#pragma once

// The CAF scheduling policy every Volt node runs: CAF's work sharing (one
// central job queue) without the wake-up that a hand-off to the running
// worker does not need.
//
// CAF's work_sharing wakes a sleeping worker for every job. When an actor
// sends to an idle actor, the sending worker could run that job itself the
// moment its current one returns, but the wake-up is paid first: a futex
// call plus, on a VM, an interrupt to a halted vCPU (20-40 µs measured on
// the 2-vCPU dev VM, longer than the gating actor's whole work for a decode
// step). Here a worker that enqueues a job leaves it to itself unless jobs
// are already waiting; a second job at once (the engine's expert batches to
// two hosts) wakes a sleeper as before, and jobs from other threads
// (network, detached actors, timers) always do. A job left to its sender
// waits at most until the sender's current job returns, so an actor must not
// send and then block; Volt's event-based actors never block (hiredis and
// CUDA work run in detached actors).

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>

#include "caf/policy/unprofiled.hpp"
#include "caf/resumable.hpp"
#include "caf/scheduler/abstract_coordinator.hpp"

namespace volt {

class hand_off_sharing : public caf::policy::unprofiled {
public:
  using queue_type = std::deque<caf::resumable*>;

  struct coordinator_data {
    explicit coordinator_data(caf::scheduler::abstract_coordinator*) {
      // nop
    }

    queue_type queue;
    std::mutex lock;
    std::condition_variable cv;
    /// Workers waiting on `cv`.
    size_t sleeping = 0;
  };

  struct worker_data {
    explicit worker_data(caf::scheduler::abstract_coordinator*) {
      // nop
    }
  };

  /// From a thread that is not a worker (or a worker's shutdown).
  template <class Coordinator>
  void central_enqueue(Coordinator* self, caf::resumable* job) {
    push(d(self), job, true);
  }

  /// From another thread, addressed to a worker.
  template <class Worker>
  void external_enqueue(Worker* self, caf::resumable* job) {
    push(d(self->parent()), job, true);
  }

  /// From the job running on worker `self`.
  template <class Worker>
  void internal_enqueue(Worker* self, caf::resumable* job) {
    push(d(self->parent()), job, false);
  }

  /// A job that used up its throughput goes to the back of the queue.
  template <class Worker>
  void resume_job_later(Worker* self, caf::resumable* job) {
    push(d(self->parent()), job, false);
  }

  template <class Worker>
  caf::resumable* dequeue(Worker* self) {
    auto& data = d(self->parent());
    std::unique_lock<std::mutex> guard{data.lock};
    if (data.queue.empty()) {
      ++data.sleeping;
      data.cv.wait(guard, [&] { return !data.queue.empty(); });
      --data.sleeping;
    }
    auto* job = data.queue.front();
    data.queue.pop_front();
    return job;
  }

  template <class Worker, class UnaryFunction>
  void foreach_resumable(Worker*, UnaryFunction) {
    // nop: workers hold no jobs of their own
  }

  template <class Coordinator, class UnaryFunction>
  void foreach_central_resumable(Coordinator* self, UnaryFunction f) {
    auto& data = d(self);
    std::unique_lock<std::mutex> guard{data.lock};
    while (!data.queue.empty()) {
      auto* job = data.queue.front();
      data.queue.pop_front();
      f(job);
    }
  }

private:
  /// Queues `job`; wakes a sleeping worker when it came from another thread,
  /// or when the enqueuing worker will not get to it next.
  static void push(coordinator_data& data, caf::resumable* job,
                   bool from_outside) {
    bool wake = false;
    {
      std::lock_guard<std::mutex> guard{data.lock};
      data.queue.push_back(job);
      wake = data.sleeping > 0 && (from_outside || data.queue.size() > 1);
    }
    if (wake)
      data.cv.notify_one();
  }
};

} // namespace volt
