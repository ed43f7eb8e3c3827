#define CAF_SUITE http.slow_client

// Clients that hold connections do not starve others: with 50 idle
// connections and one client sending its request a byte at a time, a
// completion answers as fast as on an idle node; and connections that stay
// silent are closed after [http] timeout_s.

#include <algorithm>
#include <atomic>
#include <thread>

#include "tests/http/api_fixture.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// Seconds one greedy completion of 16 tokens takes, through curl.
double completion_seconds(const api_node& node) {
  auto start = std::chrono::steady_clock::now();
  auto r = curl("POST", node.base_url() + "/v1/completions",
                R"({"prompt": "def f(x):", "max_tokens": 16,
                    "temperature": 0, "ignore_eos": true})");
  auto took = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                            - start)
                .count();
  CAF_CHECK_EQUAL(r.status, 200);
  return took;
}

double median_seconds(const api_node& node, int runs) {
  std::vector<double> times;
  for (int i = 0; i < runs; ++i)
    times.push_back(completion_seconds(node));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

/// Whether the server closed `fd` within `timeout` (read gives EOF or an
/// error).
bool closed_within(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
    return false;
  char buf[256];
  return read(fd, buf, sizeof(buf)) <= 0;
}

} // namespace

CAF_TEST(idle and slow connections do not slow a completion down) {
  api_node node;
  CAF_REQUIRE(node.wait_ready());
  completion_seconds(node); // warm-up
  auto baseline = median_seconds(node, 3);
  std::vector<int> idle;
  for (int i = 0; i < 50; ++i) {
    auto fd = tcp_connect(node.http_port());
    CAF_REQUIRE_GREATER_OR_EQUAL(fd, 0);
    idle.push_back(fd);
  }
  std::atomic<bool> stop{false};
  std::thread slow{[&] {
    auto fd = tcp_connect(node.http_port());
    const std::string request = "POST /v1/completions HTTP/1.1\r\nHost: "
                                "127.0.0.1\r\nContent-Length: 2\r\n\r\n{}";
    for (size_t i = 0; !stop && fd >= 0; i = (i + 1) % request.size()) {
      if (send(fd, &request[i], 1, MSG_NOSIGNAL) != 1)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
    if (fd >= 0)
      close(fd);
  }};
  // Let the server take every connection before timing.
  std::this_thread::sleep_for(std::chrono::milliseconds{500});
  auto loaded = median_seconds(node, 3);
  stop = true;
  slow.join();
  for (auto fd : idle)
    close(fd);
  CAF_MESSAGE("completion: " << baseline << " s idle, " << loaded
                             << " s with 50 idle connections and a slow one");
  CAF_CHECK_LESS(loaded, 1.5 * baseline + 0.25);
}

CAF_TEST(silent connections are closed after the timeout) {
  api_node node{"timeout_s = 1\n"};
  CAF_REQUIRE(node.wait_ready());
  // Connected, never a byte.
  auto idle = tcp_connect(node.http_port());
  CAF_REQUIRE_GREATER_OR_EQUAL(idle, 0);
  // Half a request line, then silence.
  auto stalled = tcp_connect(node.http_port());
  CAF_REQUIRE_GREATER_OR_EQUAL(stalled, 0);
  const std::string half = "POST /v1/compl";
  CAF_REQUIRE_EQUAL(send(stalled, half.data(), half.size(), MSG_NOSIGNAL),
                    static_cast<ssize_t>(half.size()));
  CAF_CHECK(closed_within(idle, std::chrono::milliseconds{4000}));
  CAF_CHECK(closed_within(stalled, std::chrono::milliseconds{4000}));
  close(idle);
  close(stalled);
  CAF_CHECK_EQUAL(curl("GET", node.base_url() + "/health").status, 200);
}

CAF_TEST(shutdown closes idle connections at once and finishes streams) {
  // An idle connection would hold the shutdown for timeout_s; the stream's
  // 300 tokens take well under that even in the sanitizer build (-O0).
  api_node node{"timeout_s = 60\n"};
  CAF_REQUIRE(node.wait_ready());
  auto idle = tcp_connect(node.http_port());
  CAF_REQUIRE_GREATER_OR_EQUAL(idle, 0);
  http_reply streamed;
  std::thread client{[&] {
    streamed = curl("POST", node.base_url() + "/v1/completions",
                    R"({"prompt": "def f(x):", "max_tokens": 300,
                        "temperature": 0, "ignore_eos": true,
                        "stream": true})",
                    {"-N"});
  }};
  // Wait until the stream is under way (its first token counted), not a
  // fixed time: on a loaded machine curl may not have connected by then.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  while (std::chrono::steady_clock::now() < deadline) {
    auto body = curl("GET", node.base_url() + "/metrics").body;
    auto at = body.find("voltinfer_time_to_first_token_seconds_count{");
    if (at != std::string::npos) {
      auto value = body.find("} ", at);
      if (value != std::string::npos && body.compare(value + 2, 2, "1\n") == 0)
        break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  auto start = std::chrono::steady_clock::now();
  CAF_CHECK_EQUAL(node.process().stop(SIGTERM), 0);
  auto took = std::chrono::steady_clock::now() - start;
  client.join();
  close(idle);
  // Far below [http] timeout_s (60 s), which an idle connection would
  // otherwise hold the shutdown for.
  CAF_CHECK_LESS(took, std::chrono::seconds{30});
  CAF_CHECK_EQUAL(streamed.status, 200);
  CAF_CHECK_NOT_EQUAL(streamed.body.find("data: [DONE]"), std::string::npos);
}
