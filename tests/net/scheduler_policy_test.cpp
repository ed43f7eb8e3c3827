#define CAF_SUITE net.scheduler_policy

// The scheduling policy of every node (net/scheduler_policy.hpp) on a real
// two-worker scheduler: a worker keeps a single hand-off for itself, but a
// second one at once wakes another worker, so that it runs while the sender
// is still busy; and long message chains between actors finish.

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/scoped_actor.hpp"
#include "caf/stateful_actor.hpp"
#include "net/actor_system_setup.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

struct two_workers : caf::actor_system_config {
  two_workers() {
    configure_actor_system(*this);
    set("scheduler.max-threads", size_t{2});
  }
};

/// Waits (busy, so that this worker stays taken) until `flag` is set or
/// `limit` passes; returns whether it was set.
bool spin_until(const std::atomic<bool>& flag,
                std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!flag.load()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::yield();
  }
  return true;
}

struct chain_state {
  int left = 0;
  caf::response_promise done;
};

} // namespace

CAF_TEST(a second hand - off runs on another worker while the sender is busy) {
  two_workers cfg;
  caf::actor_system sys{cfg};
  std::atomic<bool> ran{false};
  auto mark = [&ran](caf::event_based_actor*) -> caf::behavior {
    return {[&ran](int) { ran = true; }};
  };
  // Two idle actors get one message each from a busy sender: whichever the
  // woken worker takes, one of them runs before the sender returns.
  auto x = sys.spawn(mark);
  auto y = sys.spawn(mark);
  std::atomic<bool> seen{false};
  auto sender
    = sys.spawn([&, x, y](caf::event_based_actor* self) -> caf::behavior {
        return {[&, self, x, y](int) {
          self->send(x, 1);
          self->send(y, 2);
          seen = spin_until(ran, std::chrono::seconds{20});
        }};
      });
  caf::anon_send(sender, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  while (!seen && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  CAF_CHECK(seen.load());
}

CAF_TEST(a chain of hand - offs between actors runs to the end) {
  two_workers cfg;
  caf::actor_system sys{cfg};
  // A counter and an echo that pass a number back and forth 20000 times,
  // each pass a single hand-off that the sending worker keeps.
  auto echo = sys.spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](int x) { return x + 1; }};
  });
  auto counter = sys.spawn(
    [echo](caf::stateful_actor<chain_state>* self) -> caf::behavior {
      return {
        [self, echo](const std::string&, int passes) {
          self->state.left = passes;
          self->state.done = self->make_response_promise();
          self->send(echo, 0);
          return self->state.done;
        },
        [self, echo](int x) {
          if (--self->state.left == 0)
            self->state.done.deliver(x);
          else
            self->send(echo, x);
        },
      };
    });
  caf::scoped_actor client{sys};
  client
    ->request(counter, std::chrono::seconds{60}, std::string{"start"}, 20000)
    .receive([](int n) { CAF_CHECK_EQUAL(n, 20000); },
             [](caf::error& err) { CAF_FAIL(to_string(err)); });
}
