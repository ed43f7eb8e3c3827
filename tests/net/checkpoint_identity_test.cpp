#define CAF_SUITE net.checkpoint_identity

// Every node logs its checkpoint's fingerprint at start and an expert host
// names it in its hello; a router refuses a worker whose checkpoint differs
// from its own (another checkpoint of the same shapes, which would compute
// wrong answers without any error), logs it once naming the worker and both
// fingerprints, and routes nothing there. Restarted on the right checkpoint,
// the worker joins.

#include "tests/cluster.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

const std::string all_experts
  = "[worker]\nexperts = [0, 1, 2, 3, 4, 5, 6, 7]\n";

std::string address(uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

} // namespace

CAF_TEST(a worker on another checkpoint of the same shapes is refused) {
  temp_dir dir;
  auto other = write_other_weights(dir);
  auto prompt = long_prompt(17);
  auto want = without_timings(standalone_json(prompt, 10));
  // Its weights answer differently: a router that used them would be wrong.
  CAF_REQUIRE_NOT_EQUAL(without_timings(standalone_json(prompt, 10, other)),
                        want);
  auto good = free_port(), bad = free_port(), r = free_port();
  node_process good_worker{
    write_node_toml(dir, {"good", "worker", good, 0, all_experts})};
  auto bad_toml
    = write_node_toml(dir, {"bad", "worker", bad, 0, all_experts, other});
  auto bad_worker = std::make_unique<node_process>(bad_toml);
  node_process router{
    write_node_toml(dir, {"router", "router", r, 0,
                          "[router]\nworkers = [\"" + address(good) + "\", \""
                            + address(bad) + "\"]\n"})};
  CAF_REQUIRE(good_worker.wait_ready());
  CAF_REQUIRE(bad_worker->wait_ready());
  CAF_REQUIRE(router.wait_ready());
  auto ours = logged_fingerprint(router.log());
  auto theirs = logged_fingerprint(bad_worker->log());
  CAF_REQUIRE_EQUAL(ours.size(), 64u);
  CAF_REQUIRE_EQUAL(theirs.size(), 64u);
  CAF_CHECK_EQUAL(logged_fingerprint(good_worker.log()), ours);
  CAF_CHECK_NOT_EQUAL(theirs, ours);
  CAF_REQUIRE(router.wait_log("ERROR discovery: " + address(bad)
                                + ": refused: its checkpoint fingerprint "
                                + theirs + " differs from this router's "
                                + ours,
                              std::chrono::seconds{15}));
  // Replicas take turns: had the router taken the other worker, some of
  // these answers would come from it.
  for (int i = 0; i < 4; ++i) {
    auto remote = run_generate({"--connect", address(r)}, prompt, 10);
    CAF_REQUIRE_EQUAL(remote.exit_code, 0);
    CAF_CHECK_EQUAL(without_timings(remote.out), want);
  }
  // Asked again with back-off, and logged once.
  router.read_log(std::chrono::seconds{3});
  CAF_CHECK_EQUAL(count_lines(router.log(), "refused:"), 1u);
  CAF_CHECK_EQUAL(count_lines(router.log(), "expert host " + address(bad)), 0u);
  // Restarted on the right checkpoint, on the same port, it joins.
  CAF_CHECK_EQUAL(bad_worker->stop(), 0);
  bad_worker.reset();
  node_process fixed{
    write_node_toml(dir, {"bad", "worker", bad, 0, all_experts})};
  CAF_REQUIRE(fixed.wait_ready());
  CAF_CHECK(router.wait_log("expert host " + address(bad) + " joined",
                            std::chrono::seconds{20}));
  auto remote = run_generate({"--connect", address(r)}, prompt, 10);
  CAF_CHECK_EQUAL(without_timings(remote.out), want);
}
