#define CAF_SUITE actors.unexpected_messages

// Messages an actor does not handle, as a peer may send any number of them:
// each request gets unexpected_message back, and the log gets at most a few
// lines a second instead of CAF's line per message.

#include <algorithm>
#include <cstdio>
#include <unistd.h>

#include "actors/expert.hpp"
#include "base/log_throttle.hpp"
#include "tests/deterministic_fixture.hpp"
#include "tests/model/checkpoint_writer.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// Sends what the process writes to stderr into a file while it lives.
class stderr_capture {
public:
  stderr_capture() : file_(std::tmpfile()), saved_(dup(STDERR_FILENO)) {
    std::fflush(stderr);
    dup2(fileno(file_), STDERR_FILENO);
  }

  ~stderr_capture() {
    restore();
    std::fclose(file_);
  }

  /// Restores stderr and returns what was written.
  std::string text() {
    restore();
    std::string out;
    std::rewind(file_);
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), file_)) > 0;)
      out.append(buf, n);
    return out;
  }

private:
  void restore() {
    if (saved_ < 0)
      return;
    std::fflush(stderr);
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    saved_ = -1;
  }

  std::FILE* file_;
  int saved_;
};

} // namespace

CAF_TEST(the throttle passes a burst a second and counts the rest) {
  log_throttle throttle{3};
  uint64_t held = 99;
  for (int i = 0; i < 3; ++i) {
    CAF_CHECK(throttle.pass(held));
    CAF_CHECK_EQUAL(held, 0u);
  }
  for (int i = 0; i < 10; ++i)
    CAF_CHECK(!throttle.pass(held));
}

CAF_TEST_FIXTURE_SCOPE(unexpected_message_tests, deterministic_fixture)

CAF_TEST(junk sent to an expert actor is answered and logged in brief) {
  auto ckpt = checkpoint::open(tiny_mixtral_dir());
  CAF_REQUIRE(ckpt);
  auto weights = expert_weights::load(*ckpt, {1});
  CAF_REQUIRE(weights);
  auto untyped = caf::actor_cast<caf::actor>(sys.spawn(expert, *weights));
  stderr_capture captured;
  int refused = 0;
  for (int i = 0; i < 50; ++i) {
    auto rh = self->request(untyped, caf::infinite, std::string{"junk\n"}, i);
    run();
    rh.receive([](const std::string&) {},
               [&](caf::error& err) {
                 refused += err == caf::sec::unexpected_message ? 1 : 0;
               });
  }
  auto log = captured.text();
  CAF_CHECK_EQUAL(refused, 50);
  CAF_CHECK_EQUAL(log.find("*** unexpected message"), std::string::npos);
  auto lines = std::count(log.begin(), log.end(), '\n');
  CAF_CHECK_GREATER_OR_EQUAL(lines, 1);
  CAF_CHECK_LESS_OR_EQUAL(lines, 10);
  CAF_CHECK_NOT_EQUAL(log.find("dropped a message it does not handle: "
                               "(\"junk"),
                      std::string::npos);
  // One line each: the newline inside the message is not written raw.
  CAF_CHECK_EQUAL(log.find("junk\n"), std::string::npos);
}

CAF_TEST_FIXTURE_SCOPE_END()
