#define CAF_SUITE net.degradation

// Graceful degradation on a real cluster over loopback: a router and three
// workers, expert 3 hosted by two of them. With [router] on_missing_expert =
// "renormalize", both hosts of expert 3 are killed (kill -9) while requests
// are in flight: none fails; later answers equal, bit for bit, the CPU
// reference that masks expert 3 out of routing (generate --mask-experts 3),
// over CAF and over the HTTP API (whole and streamed), each carrying
// "degraded"; voltinfer_degraded_tokens_total counts exactly the degraded
// tokens of all answers; the log says so once; a host that comes back brings
// full routing back by itself. With the default policy ("fail") the same
// loss is a clear error naming the expert.

#include <nlohmann/json.hpp>

#include "tests/cluster.hpp"
#include "tests/http/api_fixture.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// Workers w1 and w2 host expert 3 alone, w3 every other expert; a router
/// over the three (metrics, HTTP API) with `extra` in its [router] section.
struct replicated_expert_cluster {
  replicated_expert_cluster(const std::string& router_extra, std::string m)
    : model(std::move(m)),
      router(write_node_toml(
        dir, {"router", "router", r, r_metrics,
              "[router]\nworkers = [\"127.0.0.1:" + std::to_string(w1)
                + "\", \"127.0.0.1:" + std::to_string(w2) + "\", \"127.0.0.1:"
                + std::to_string(w3) + "\"]\n" + router_extra
                + "[http]\nport = " + std::to_string(r_http) + "\n",
              model})) {}

  temp_dir dir;
  std::string model;
  uint16_t w1 = free_port(), w2 = free_port(), w3 = free_port();
  uint16_t r = free_port(), r_metrics = free_port(), r_http = free_port();
  node_process worker1{write_node_toml(
    dir, {"w1", "worker", w1, 0, "[worker]\nexperts = [3]\n", model})};
  node_process worker2{write_node_toml(
    dir, {"w2", "worker", w2, 0, "[worker]\nexperts = [3]\n", model})};
  node_process worker3{write_node_toml(
    dir, {"w3", "worker", w3, 0, "[worker]\nexperts = [0, 1, 2, 4, 5, 6, 7]\n",
          model})};
  node_process router;

  std::vector<std::string> connect() const {
    return {"--connect", "127.0.0.1:" + std::to_string(r)};
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(r_http) + path;
  }

  /// Every node is up and the router has joined all three workers.
  void require_ready() {
    for (auto* w : {&worker1, &worker2, &worker3})
      CAF_REQUIRE(w->wait_ready());
    CAF_REQUIRE(router.wait_ready());
    for (auto port : {w1, w2, w3})
      CAF_REQUIRE(router.wait_log("expert host 127.0.0.1:"
                                    + std::to_string(port) + " joined",
                                  std::chrono::seconds{10}));
  }

  /// Kills both hosts of expert 3, frozen first so that rows sent to them
  /// are surely in flight when they die.
  void kill_expert_3() {
    worker1.signal(SIGSTOP);
    worker2.signal(SIGSTOP);
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
    worker1.signal(SIGKILL);
    worker2.signal(SIGKILL);
    CAF_REQUIRE_NOT_EQUAL(worker1.wait_exit(), 0);
    CAF_REQUIRE_NOT_EQUAL(worker2.wait_exit(), 0);
  }

  /// voltinfer_degraded_tokens_total of the router (-1 when missing).
  double degraded_tokens_metric() const {
    auto text = http_get(r_metrics, "/metrics");
    const std::string name
      = "voltinfer_degraded_tokens_total{node=\"router\"} ";
    auto at = text.find(name);
    return at == std::string::npos
             ? -1
             : std::strtod(text.c_str() + at + name.size(), nullptr);
  }
};

/// The "degraded" object of a JSON answer, or null.
nlohmann::json degraded_of(const std::string& text) {
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("degraded"))
    return nullptr;
  return doc["degraded"];
}

/// degraded.tokens of a JSON answer (0 without "degraded").
int64_t degraded_tokens(const std::string& text) {
  auto d = degraded_of(text);
  return d.is_null() ? 0 : d.at("tokens").get<int64_t>();
}

/// The events of a server-sent event stream, [DONE] excluded.
std::vector<nlohmann::json> sse_events(const std::string& body) {
  std::vector<nlohmann::json> out;
  size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    auto end = body.find("\n\n", at);
    auto data = body.substr(at + 6, end - at - 6);
    if (data != "[DONE]")
      out.push_back(nlohmann::json::parse(data, nullptr, false));
    at = end;
  }
  return out;
}

std::string ids_json(const std::string& csv) {
  return "[" + csv + "]";
}

} // namespace

CAF_TEST(killing both hosts of an expert degrades answers and fails none) {
  temp_dir models;
  auto model = write_deep_model(models);
  replicated_expert_cluster c{"on_missing_expert = \"renormalize\"\n", model};
  c.require_ready();
  // Requests in flight while the hosts die.
  std::vector<std::unique_ptr<child_process>> clients;
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> argv{
      volt_node_binary(), "generate",
      "--connect",        "127.0.0.1:" + std::to_string(c.r),
      "--prompt-ids",     long_prompt(20 + i),
      "--max-new-tokens", "60",
      "--ignore-eos",     "--json"};
    clients.push_back(
      std::make_unique<child_process>(argv, client_tls_env()));
  }
  CAF_REQUIRE(wait_peer_traffic(c.r_metrics));
  c.kill_expert_3();
  int64_t counted = 0;
  for (auto& client : clients) {
    CAF_CHECK_EQUAL(client->wait(std::chrono::seconds{120}), 0);
    CAF_MESSAGE("in flight: " << degraded_of(client->out()).dump());
    counted += degraded_tokens(client->out());
  }
  CAF_CHECK(c.router.wait_log("degraded routing: experts 3 are left out",
                              std::chrono::seconds{5}));
  // After the loss: the masked reference, bit for bit, "degraded" included.
  for (auto prompt : {std::string{"203"}, long_prompt(9), long_prompt(33)}) {
    auto got = run_generate(c.connect(), prompt, 8);
    CAF_REQUIRE_EQUAL(got.exit_code, 0);
    auto want = run_generate({"--model", model, "--mask-experts", "3"}, prompt,
                             8);
    CAF_REQUIRE_EQUAL(want.exit_code, 0);
    CAF_CHECK_EQUAL(without_timings(got.out), without_timings(want.out));
    counted += degraded_tokens(got.out);
  }
  // The HTTP API: the same tokens, "degraded" in the response and in the
  // stream's last chunk.
  auto prompt = long_prompt(33);
  auto want = run_generate({"--model", model, "--mask-experts", "3"}, prompt,
                           8);
  auto want_doc = nlohmann::json::parse(want.out);
  CAF_REQUIRE(!degraded_of(want.out).is_null());
  auto body = R"({"prompt": )" + ids_json(prompt)
              + R"(, "max_tokens": 8, "temperature": 0, "ignore_eos": true)";
  auto whole = curl("POST", c.url("/v1/completions"), body + "}");
  CAF_REQUIRE_EQUAL(whole.status, 200);
  auto doc = nlohmann::json::parse(whole.body);
  CAF_CHECK_EQUAL(doc["choices"][0]["token_ids"], want_doc["new_tokens"]);
  CAF_CHECK_EQUAL(doc["degraded"], want_doc["degraded"]);
  counted += doc["degraded"].value("tokens", int64_t{0});
  auto streamed = curl("POST", c.url("/v1/completions"),
                       body + R"(, "stream": true})");
  CAF_REQUIRE_EQUAL(streamed.status, 200);
  auto events = sse_events(streamed.body);
  CAF_REQUIRE_GREATER(events.size(), 1u);
  nlohmann::json tokens = nlohmann::json::array();
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    for (auto& t : events[i]["choices"][0]["token_ids"])
      tokens.push_back(t);
    CAF_CHECK(!events[i].contains("degraded"));
  }
  CAF_CHECK_EQUAL(tokens, want_doc["new_tokens"]);
  CAF_CHECK_EQUAL(events.back()["degraded"], want_doc["degraded"]);
  counted += events.back()["degraded"].value("tokens", int64_t{0});
  // Every degraded token of every answer, counted once.
  CAF_MESSAGE(counted << " degraded tokens in the answers");
  CAF_CHECK_GREATER(counted, 0);
  CAF_CHECK_EQUAL(c.degraded_tokens_metric(), static_cast<double>(counted));
  c.router.read_log(std::chrono::milliseconds{200});
  CAF_CHECK_EQUAL(count_lines(c.router.log(), "degraded routing:"), 1u);
  // A host of expert 3 comes back: full routing resumes by itself.
  node_process again{c.dir.file("w1.toml")};
  CAF_REQUIRE(again.wait_ready());
  auto joined = "expert host 127.0.0.1:" + std::to_string(c.w1) + " joined";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  while (count_lines(c.router.log(), joined) < 2
         && std::chrono::steady_clock::now() < deadline)
    c.router.read_log(std::chrono::milliseconds{200});
  CAF_REQUIRE_EQUAL(count_lines(c.router.log(), joined), 2u);
  auto healed = run_generate(c.connect(), long_prompt(33), 8);
  CAF_REQUIRE_EQUAL(healed.exit_code, 0);
  CAF_CHECK_EQUAL(without_timings(healed.out),
                  without_timings(standalone_json(long_prompt(33), 8, model)));
  CAF_CHECK(degraded_of(healed.out).is_null());
  CAF_CHECK(c.router.wait_log("full routing resumed", std::chrono::seconds{5}));
}

CAF_TEST(with the default policy losing both hosts of an expert is an error) {
  replicated_expert_cluster c{"ready_timeout_ms = 1000\n", tiny_mixtral_dir()};
  c.require_ready();
  c.kill_expert_3();
  auto later = run_generate({"--connect", "127.0.0.1:" + std::to_string(c.r),
                             "--wait-seconds", "1"},
                            long_prompt(9), 4);
  CAF_CHECK_NOT_EQUAL(later.exit_code, 0);
  CAF_CHECK_NOT_EQUAL(later.err.find("no host for experts 3"),
                      std::string::npos);
  CAF_MESSAGE("client said: " << later.err);
  auto http = curl("POST", c.url("/v1/completions"),
                   R"({"prompt": [203, 5], "max_tokens": 4})");
  CAF_CHECK_EQUAL(http.status, 503);
  CAF_CHECK_NOT_EQUAL(http.body.find("no live host for experts 3"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(http.body.find("missing_expert"), std::string::npos);
  CAF_CHECK_EQUAL(c.router.log().find("degraded routing"), std::string::npos);
}
