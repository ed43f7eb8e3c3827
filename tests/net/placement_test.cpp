#define CAF_SUITE net.placement

// A [router] placement that its node cannot host (experts outside the
// worker's model, another checkpoint) fails once, with one line on each side
// naming both checkpoints' fingerprints, and the router is not ready; it used
// to spawn, join, report ready and lose the host twenty times a second.

#include <thread>

#include "tests/cluster.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

CAF_TEST(a placement outside the model of its node fails once and clearly) {
  temp_dir dir;
  // The router's model has 16 experts, the worker's (the tiny fixture) 8.
  auto wide = dir.subdir("wide");
  auto cfg = small_model_config(320, 64, 128, 2, 4, 2, 16, 16, 2);
  CAF_REQUIRE(!write_checkpoint(wide, config_json(cfg),
                                random_mixtral_tensors(cfg)));
  auto w = free_port(), r = free_port();
  node_process worker{write_node_toml(dir, {"w", "worker", w, 0, ""})};
  CAF_REQUIRE(worker.wait_ready());
  auto placement = "[router]\nready_timeout_ms = 1000\nplacement = [{node = "
                   "\"127.0.0.1:"
                   + std::to_string(w)
                   + "\", experts = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, "
                     "13, 14, 15]}]\n";
  node_process router{
    write_node_toml(dir, {"router", "router", r, 0, placement, wide})};
  CAF_REQUIRE(router.wait_log("cannot spawn experts", std::chrono::seconds{15}));
  // Time for a retry loop to show, had there been one.
  std::this_thread::sleep_for(std::chrono::seconds{3});
  auto r_log = router.log();
  CAF_CHECK_EQUAL(count_lines(r_log, "cannot spawn experts"), 1u);
  CAF_CHECK_NOT_EQUAL(r_log.find("ERROR discovery: 127.0.0.1:"
                                 + std::to_string(w)
                                 + ": cannot spawn experts 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, "
                                 "12, 13, 14, 15 there: "),
                      std::string::npos);
  // The worker refuses before it loads anything: the router's checkpoint is
  // another one.
  auto ours = logged_fingerprint(r_log);
  auto theirs = logged_fingerprint(worker.log());
  CAF_REQUIRE_EQUAL(ours.size(), 64u);
  CAF_CHECK_NOT_EQUAL(r_log.find("this node's checkpoint " + tiny_mixtral_dir()
                                 + " has the fingerprint " + theirs
                                 + ", the router's has " + ours),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(r_log.find("not retrying"), std::string::npos);
  CAF_CHECK_EQUAL(count_lines(r_log, "joined"), 0u);
  CAF_CHECK_EQUAL(count_lines(r_log, "ready:"), 0u);
  worker.read_log(std::chrono::milliseconds{200});
  CAF_CHECK_EQUAL(count_lines(worker.log(), "cannot spawn experts"), 1u);
  // Clients are told which experts have no host.
  auto client = run_generate({"--connect", "127.0.0.1:" + std::to_string(r),
                              "--wait-seconds", "1"},
                             "203", 2);
  CAF_CHECK_NOT_EQUAL(client.exit_code, 0);
  CAF_CHECK_EQUAL(router.stop(), 0);
  CAF_CHECK_EQUAL(worker.stop(), 0);
}
