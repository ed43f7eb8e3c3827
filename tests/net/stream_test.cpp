#define CAF_SUITE net.stream

// Streaming to a sink in another process: `volt-node generate --connect
// --stream` prints the tokens that a node process makes, the same as the
// answer without streaming, and a client killed mid stream gets its request
// cancelled on the node (its sink's process is gone) rather than computed to
// the end.

#include <sstream>

#include "tests/cluster.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// Tokens per sequence from `generate --stream` output: the lines
/// "sequence I: TOKEN" before the last sequence's "finished" line (the
/// summary follows).
std::vector<std::vector<int32_t>> streamed_sequences(const std::string& out,
                                                     size_t n) {
  std::vector<std::vector<int32_t>> seqs(n);
  std::istringstream lines{out};
  std::string line;
  size_t finished = 0;
  while (finished < n && std::getline(lines, line)) {
    size_t index = 0;
    int32_t token = 0;
    char rest = 0;
    if (line.find(" finished: ") != std::string::npos)
      ++finished;
    else if (std::sscanf(line.c_str(), "sequence %zu: %d%c", &index, &token,
                         &rest)
               == 2
             && index < n)
      seqs[index].push_back(token);
    else
      CAF_FAIL("unexpected line in the stream: '" << line << "'");
  }
  CAF_CHECK_EQUAL(finished, n);
  return seqs;
}

/// Tokens per sequence from the summary of `generate` without --json.
std::vector<std::vector<int32_t>> summary_sequences(const std::string& out,
                                                   size_t n) {
  std::vector<std::vector<int32_t>> seqs;
  std::istringstream lines{out};
  std::string line;
  while (std::getline(lines, line)) {
    auto colon = line.find(": ");
    auto head = line.substr(0, colon);
    if (colon == std::string::npos
        || (head != "new tokens"
            && head != "sequence " + std::to_string(seqs.size())))
      continue;
    std::istringstream tokens{line.substr(colon + 2)};
    seqs.emplace_back();
    for (int32_t t = 0; tokens >> t;)
      seqs.back().push_back(t);
    if (seqs.size() == n)
      break;
  }
  return seqs;
}

run_result generate_text(std::vector<std::string> flags) {
  std::vector<std::string> argv{volt_node_binary(), "generate"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return run_process(argv, std::chrono::seconds{60}, client_tls_env());
}

/// The value of the first sample of `name` in a /metrics text, or -1.
double metric_value(const std::string& text, const std::string& name) {
  auto at = text.find("\n" + name);
  if (at == std::string::npos)
    return -1;
  auto space = text.find(' ', text.find('}', at));
  return std::stod(text.substr(space + 1));
}

} // namespace

CAF_TEST(a remote client prints the tokens the node streams) {
  temp_dir dir;
  auto port = free_port();
  node_process node{
    write_node_toml(dir, {"s", "standalone", port, 0, ""})};
  CAF_REQUIRE(node.wait_ready());
  auto where = "127.0.0.1:" + std::to_string(port);
  struct streamed_case {
    std::vector<std::string> flags;
    size_t n;
  };
  std::vector<streamed_case> cases = {
    {{"--prompt-ids", "203", "--max-new-tokens", "12", "--ignore-eos"}, 1},
    {{"--prompt-ids", "9,41,7", "--max-new-tokens", "8", "--ignore-eos",
      "--temperature", "1", "--seed", "11", "--n", "2"},
     2},
  };
  for (auto& c : cases) {
    auto flags = c.flags;
    flags.insert(flags.begin(), {"--connect", where});
    auto plain = generate_text(flags);
    CAF_REQUIRE_EQUAL(plain.exit_code, 0);
    flags.push_back("--stream");
    auto streamed = generate_text(flags);
    CAF_REQUIRE_EQUAL(streamed.exit_code, 0);
    auto want = summary_sequences(plain.out, c.n);
    CAF_REQUIRE_EQUAL(want.size(), c.n);
    if (c.n == 1)
      CAF_CHECK_EQUAL(want[0], std::vector<int32_t>({170, 288, 170, 288, 170,
                                                     170, 288, 170, 288, 170,
                                                     170, 288}));
    CAF_CHECK_EQUAL(streamed_sequences(streamed.out, c.n), want);
    // The summary after the stream is the whole answer.
    CAF_CHECK_EQUAL(summary_sequences(streamed.out.substr(
                                        streamed.out.rfind("finished: ")),
                                      c.n),
                    want);
  }
  CAF_CHECK_EQUAL(node.stop(), 0);
}

CAF_TEST(a client killed mid stream gets its request cancelled) {
  temp_dir dir;
  auto model = write_deep_model(dir);
  auto w = free_port(), r = free_port(), r_metrics = free_port();
  node_process worker{write_node_toml(
    dir, {"w", "worker", w, 0, "[worker]\nexperts = [0, 1, 2, 3, 4, 5, 6, 7]\n",
          model})};
  node_process router{write_node_toml(
    dir, {"router", "router", r, r_metrics,
          "[router]\nworkers = [\"127.0.0.1:" + std::to_string(w) + "\"]\n",
          model})};
  CAF_REQUIRE(worker.wait_ready());
  CAF_REQUIRE(router.wait_ready());
  // Sixteen layers, each crossing to the worker: hundreds of tokens take
  // seconds, so the kill lands mid request.
  child_process client{{volt_node_binary(), "generate", "--connect",
                        "127.0.0.1:" + std::to_string(r), "--prompt-ids",
                        long_prompt(20), "--max-new-tokens", "900",
                        "--ignore-eos", "--stream"},
                       client_tls_env()};
  CAF_REQUIRE(client.wait_for_stdout("sequence 0: ", std::chrono::seconds{30}));
  client.signal(SIGKILL);
  client.wait(std::chrono::seconds{5});
  CAF_REQUIRE(router.wait_log("cancelled: its stream sink is gone",
                              std::chrono::seconds{10}));
  // The request ended early: far fewer tokens than asked were made. The
  // answer (and its count) comes at the end of the step in flight.
  double made = -1;
  for (int i = 0; i < 250 && made <= 0; ++i) {
    if (i > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    made = metric_value(http_get(r_metrics, "/metrics"),
                        "voltinfer_tokens_generated_total");
  }
  CAF_MESSAGE("tokens made before the cancel: " << made);
  CAF_CHECK_GREATER_OR_EQUAL(made, 1);
  CAF_CHECK_LESS(made, 900);
  // The router serves on.
  auto after = run_generate({"--connect", "127.0.0.1:" + std::to_string(r)},
                            "203", 3);
  CAF_CHECK_EQUAL(after.exit_code, 0);
  CAF_CHECK_EQUAL(router.stop(), 0);
  CAF_CHECK_EQUAL(worker.stop(), 0);
}
