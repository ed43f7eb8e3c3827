#define CAF_SUITE apps.checkpoint_change

// A checkpoint file changed under a running node: truncated (the next request
// used to crash the node with SIGBUS) or rewritten in place with the same size
// (which silently switched its weights) stops the node with one clear line and
// exit code 2 after answering the request with the error; a file replaced by
// rename is safe, and the node keeps answering from the file it mapped.

#include <filesystem>
#include <fstream>

#include "tests/cluster.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// A standalone node over a private copy of the tiny checkpoint.
struct node_on_copy {
  temp_dir dir;
  std::string model = dir.subdir("model");
  std::string weights = model + "/model.safetensors";
  uint16_t port = free_port();
  std::unique_ptr<node_process> node;

  node_on_copy() {
    namespace fs = std::filesystem;
    for (auto name : {"config.json", "model.safetensors"})
      fs::copy_file(tiny_mixtral_dir() + "/" + name, model + "/" + name);
    node = std::make_unique<node_process>(
      write_node_toml(dir, {"copy", "standalone", port, 0, "", model}));
  }

  run_result ask() const {
    return run_generate({"--connect", "127.0.0.1:" + std::to_string(port)},
                        "203", 6);
  }

  /// The request after a change fails naming the file, and the node stops
  /// with exit code 2 and that line in its log. An idle node checks its
  /// files on its own too (its engine's timer), so on a busy machine it may
  /// have stopped before the request arrives: then the request cannot reach
  /// it, and the log alone names the file.
  void require_stop(const std::string& what) {
    auto r = ask();
    CAF_CHECK_NOT_EQUAL(r.exit_code, 0);
    if (r.err.find("cannot reach a Volt node") == std::string::npos)
      CAF_CHECK_NOT_EQUAL(r.err.find(weights + ": changed on disk while this "
                                               "node serves from it ("
                                     + what),
                          std::string::npos);
    CAF_CHECK_EQUAL(node->wait_exit(), 2);
    CAF_CHECK_NOT_EQUAL(node->log().find("ERROR engine: " + weights
                                         + ": changed on disk while this "
                                           "node serves from it ("
                                         + what),
                        std::string::npos);
  }
};

} // namespace

CAF_TEST(a truncated checkpoint stops the node instead of crashing it) {
  node_on_copy n;
  CAF_REQUIRE(n.node->wait_ready());
  CAF_REQUIRE_EQUAL(n.ask().exit_code, 0);
  auto size = std::filesystem::file_size(n.weights);
  std::filesystem::resize_file(n.weights, size / 2);
  n.require_stop("its size went from " + std::to_string(size) + " to "
                 + std::to_string(size / 2) + " bytes");
}

CAF_TEST(a checkpoint rewritten in place stops the node) {
  node_on_copy n;
  CAF_REQUIRE(n.node->wait_ready());
  CAF_REQUIRE_EQUAL(n.ask().exit_code, 0);
  // Same size, other weights: the last bytes are lm_head's.
  {
    std::fstream f{n.weights, std::ios::in | std::ios::out | std::ios::binary};
    f.seekp(-4096, std::ios::end);
    f.write(std::string(4096, '\x11').data(), 4096);
  }
  n.require_stop("it was written in place");
}

CAF_TEST(a checkpoint replaced by rename keeps the node serving) {
  node_on_copy n;
  CAF_REQUIRE(n.node->wait_ready());
  auto before = n.ask();
  CAF_REQUIRE_EQUAL(before.exit_code, 0);
  // The new file (here: other weights) goes in under a temporary name first.
  auto next = n.model + "/model.safetensors.tmp";
  auto bytes = read_text(n.weights);
  std::fill(bytes.end() - 4096, bytes.end(), '\x11');
  write_text(next, bytes);
  std::filesystem::rename(next, n.weights);
  auto after = n.ask();
  CAF_REQUIRE_EQUAL(after.exit_code, 0);
  CAF_CHECK_EQUAL(without_timings(after.out), without_timings(before.out));
  CAF_CHECK_EQUAL(n.node->stop(), 0);
}

CAF_TEST(a worker whose checkpoint is truncated stops and its replica answers) {
  temp_dir dir;
  auto copy = dir.subdir("copy");
  for (auto name : {"config.json", "model.safetensors"})
    std::filesystem::copy_file(tiny_mixtral_dir() + "/" + name,
                               copy + "/" + name);
  auto w1 = free_port(), w2 = free_port(), r = free_port();
  auto all = std::string{"[worker]\nexperts = [0, 1, 2, 3, 4, 5, 6, 7]\n"};
  node_process worker1{
    write_node_toml(dir, {"w1", "worker", w1, 0, all, copy})};
  node_process worker2{write_node_toml(dir, {"w2", "worker", w2, 0, all})};
  node_process router{write_node_toml(
    dir, {"router", "router", r, 0,
          "[router]\nworkers = [\"127.0.0.1:" + std::to_string(w1)
            + "\", \"127.0.0.1:" + std::to_string(w2) + "\"]\n"})};
  CAF_REQUIRE(router.wait_ready());
  for (auto port : {w1, w2})
    CAF_REQUIRE(router.wait_log("expert host 127.0.0.1:" + std::to_string(port)
                                  + " joined",
                                std::chrono::seconds{10}));
  auto want = without_timings(standalone_json(long_prompt(9), 6));
  std::filesystem::resize_file(copy + "/model.safetensors", 4096);
  // Both workers get rows; the one with the broken file refuses them and
  // stops, its replica computes them.
  auto got = run_generate({"--connect", "127.0.0.1:" + std::to_string(r)},
                          long_prompt(9), 6);
  CAF_CHECK_EQUAL(got.exit_code, 0);
  CAF_CHECK_EQUAL(without_timings(got.out), want);
  CAF_CHECK_EQUAL(worker1.wait_exit(), 2);
  CAF_CHECK_NOT_EQUAL(worker1.log().find("ERROR expert: " + copy
                                         + "/model.safetensors: changed on "
                                           "disk"),
                      std::string::npos);
  CAF_CHECK_EQUAL(router.stop(), 0);
  CAF_CHECK_EQUAL(worker2.stop(), 0);
}
