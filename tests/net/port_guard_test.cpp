#define CAF_SUITE net.port_guard

// The TCP front of a node's port, in this process against an echo server that
// stands in for CAF's middleman: the first bytes are judged as a BASP client
// handshake (or, on a TLS port, as a TLS ClientHello), a client that passes is
// relayed byte for byte both ways with bounded buffering, every other client is
// counted by reason and closed, and closing the port leaves relayed connections
// working.

#include "net/port_guard.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "base/error.hpp"
#include "net/basp_hello.hpp"
#include "net/metrics.hpp"
#include "net/tcp_listen.hpp"
#include "tests/cluster.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;
using namespace std::chrono_literals;

namespace {

/// What CAF 0.17.6 sent first when `volt-node generate --connect` opened a
/// connection (dumped by a relay): client_handshake, 32 payload bytes.
const std::vector<uint8_t> caf_client_header
  = {0x01, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0,
     0,    0, 0, 0, 0, 0, 0, 0,    0, 0, 0, 0, 0, 0, 0, 0};

basp_hello judge(const std::string& bytes) {
  return basp_hello::judge(reinterpret_cast<const uint8_t*>(bytes.data()),
                           bytes.size());
}

basp_hello judge(const std::vector<uint8_t>& bytes, size_t n) {
  return basp_hello::judge(bytes.data(), n);
}

/// Byte `i` of a long test stream.
char pattern(size_t i) {
  return static_cast<char>((i * 131 + (i >> 13)) & 0xff);
}

/// A loopback echo server: every connection gets back what it sends.
class echo_server {
public:
  echo_server() {
    auto bound = listen_tcp("127.0.0.1", 0);
    CAF_REQUIRE(bound);
    fd_ = bound->fd;
    port_ = bound->port;
    thread_ = std::thread{[this] {
      for (;;) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0)
          return;
        workers_.emplace_back([c] {
          char buf[65536];
          ssize_t n;
          while ((n = read(c, buf, sizeof(buf))) > 0)
            if (send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n)
              break;
          close(c);
        });
      }
    }};
  }

  ~echo_server() {
    shutdown(fd_, SHUT_RDWR); // wakes accept
    thread_.join();
    for (auto& w : workers_)
      w.join();
    close(fd_);
  }

  uint16_t port() const {
    return port_;
  }

private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::thread> workers_;
};

bool send_all(int fd, const void* data, size_t n) {
  auto p = static_cast<const char*>(data);
  while (n > 0) {
    auto r = send(fd, p, n, MSG_NOSIGNAL);
    if (r <= 0)
      return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

/// Reads exactly `n` bytes within `timeout`; "" on timeout or close.
std::string read_exact(int fd, size_t n,
                       std::chrono::milliseconds timeout = 5s) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[65536];
  while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0)
      continue;
    auto r = read(fd, buf, std::min(sizeof(buf), n - out.size()));
    if (r <= 0)
      return {};
    out.append(buf, static_cast<size_t>(r));
  }
  return out.size() == n ? out : std::string{};
}

/// Whether the peer closes `fd` within `timeout` (what it sent is skipped).
bool closed_by_peer(int fd, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0)
      continue;
    if (read(fd, buf, sizeof(buf)) <= 0)
      return true;
  }
  return false;
}

/// A guard on a free loopback port in front of an echo server.
struct fixture {
  explicit fixture(std::chrono::milliseconds timeout = 10s,
                   std::chrono::microseconds busy_poll = 0us) {
    port_guard::options opts;
    opts.host = "127.0.0.1";
    opts.port = 0;
    opts.handshake_timeout = timeout;
    opts.busy_poll = busy_poll;
    opts.metrics = metrics;
    auto listening = port_guard::listen(std::move(opts));
    CAF_REQUIRE(listening);
    guard = std::move(*listening);
    guard->serve(echo.port());
  }

  /// The value of voltinfer_rejected_connections_total{reason}.
  std::string rejected(const std::string& reason) const {
    std::ostringstream out;
    prometheus::TextSerializer{}.Serialize(out, metrics->registry()->Collect());
    auto text = out.str();
    auto key = "voltinfer_rejected_connections_total{node=\"t\",reason=\""
               + reason + "\"} ";
    auto at = text.find(key);
    if (at == std::string::npos)
      return "missing";
    at += key.size();
    return text.substr(at, text.find('\n', at) - at);
  }

  echo_server echo;
  std::shared_ptr<node_metrics> metrics = std::make_shared<node_metrics>("t");
  std::unique_ptr<port_guard> guard;
};

} // namespace

CAF_TEST(a caf client header passes and other first bytes are named) {
  for (size_t n = 0; n < basp_header_size; ++n)
    CAF_CHECK(judge(caf_client_header, n).what
              == basp_hello::verdict::undecided);
  CAF_CHECK(judge(caf_client_header, basp_header_size).what
            == basp_hello::verdict::client_handshake);
  auto http = judge("GET /metrics HTTP/1.1\r\n");
  CAF_CHECK(http.what == basp_hello::verdict::rejected);
  CAF_CHECK_EQUAL(std::string{http.reason}, "http");
  CAF_CHECK_EQUAL(std::string{judge("POST / HTTP/1.1").reason}, "http");
  auto tls = judge("\x16\x03\x01\x02\x00");
  CAF_CHECK_EQUAL(std::string{tls.reason}, "bad_handshake");
  CAF_CHECK_NOT_EQUAL(tls.detail.find("TLS"), std::string::npos);
  // Decided at the first contradicting byte, not after 32.
  CAF_CHECK(judge(std::string(1, '\xff')).what
            == basp_hello::verdict::rejected);
  auto server_handshake = judge(std::string(1, '\0'));
  CAF_CHECK_NOT_EQUAL(server_handshake.detail.find("operation 0"),
                      std::string::npos);
  auto huge = caf_client_header;
  huge[4] = 0x10; // payload of 256 MiB
  CAF_CHECK(judge(huge, 8).what == basp_hello::verdict::rejected);
  auto empty_payload = caf_client_header;
  empty_payload[7] = 0;
  CAF_CHECK(judge(empty_payload, 8).what == basp_hello::verdict::rejected);
  auto versioned = caf_client_header;
  versioned[15] = 3;
  CAF_CHECK_NOT_EQUAL(judge(versioned, 16).detail.find("another CAF version"),
                      std::string::npos);
  CAF_CHECK_EQUAL(render_bytes(reinterpret_cast<const uint8_t*>("GE\x01"), 3),
                  "47 45 01 (\"GE.\")");
}

CAF_TEST(on a tls port a clienthello passes and a plaintext client is named) {
  auto judge_tls = [](const std::vector<uint8_t>& bytes, size_t n) {
    return basp_hello::judge_tls(bytes.data(), n);
  };
  // What `volt-node generate --connect` with TLS files sent first (dumped by
  // a listener): a handshake record (22), version 3.1, 380 bytes, holding a
  // ClientHello (1).
  const std::vector<uint8_t> client_hello = {0x16, 0x03, 0x01,
                                             0x01, 0x7c, 0x01};
  for (size_t n = 0; n < tls_hello_size; ++n)
    CAF_CHECK(judge_tls(client_hello, n).what
              == basp_hello::verdict::undecided);
  CAF_CHECK(judge_tls(client_hello, tls_hello_size).what
            == basp_hello::verdict::client_handshake);
  // A CAF client without TLS is told apart at its first byte.
  auto plain = judge_tls(caf_client_header, 1);
  CAF_CHECK_EQUAL(std::string{plain.reason}, "plaintext");
  CAF_CHECK_NOT_EQUAL(plain.detail.find("a CAF client without TLS"),
                      std::string::npos);
  std::string get = "GET / HTTP/1.1";
  auto http = basp_hello::judge_tls(
    reinterpret_cast<const uint8_t*>(get.data()), get.size());
  CAF_CHECK_EQUAL(std::string{http.reason}, "http");
  for (auto [bytes, what] :
       {std::pair<std::vector<uint8_t>, std::string>{{0xff}, "record type 255"},
        {{0x16, 0x02, 0x00}, "version 2.0"},
        {{0x16, 0x03, 0x01, 0x00, 0x00}, "record of 0 bytes"},
        {{0x16, 0x03, 0x03, 0x00, 0x10, 0x02}, "handshake type 2"}}) {
    auto v = judge_tls(bytes, bytes.size());
    CAF_CHECK(v.what == basp_hello::verdict::rejected);
    CAF_CHECK_EQUAL(std::string{v.reason}, "bad_handshake");
    CAF_CHECK_NOT_EQUAL(v.detail.find(what), std::string::npos);
  }
}

CAF_TEST(a vetted client is relayed both ways with bounded buffering) {
  fixture f;
  int fd = tcp_connect(f.guard->port());
  CAF_REQUIRE_GREATER_OR_EQUAL(fd, 0);
  CAF_REQUIRE(send_all(fd, caf_client_header.data(), basp_header_size));
  auto echoed = read_exact(fd, basp_header_size);
  CAF_REQUIRE_EQUAL(echoed.size(), basp_header_size);
  CAF_CHECK(
    std::memcmp(echoed.data(), caf_client_header.data(), basp_header_size)
    == 0);
  // More than every socket buffer on the way can hold: if the guard buffered
  // without bound, the writer would finish while nobody reads.
  constexpr size_t total = 96u << 20;
  std::atomic<bool> written{false};
  std::thread writer{[&] {
    std::vector<char> chunk(1 << 20);
    for (size_t off = 0; off < total; off += chunk.size()) {
      for (size_t i = 0; i < chunk.size(); ++i)
        chunk[i] = pattern(off + i);
      if (!send_all(fd, chunk.data(), chunk.size()))
        break;
    }
    written = true;
  }};
  std::this_thread::sleep_for(1s);
  CAF_CHECK(!written);
  size_t got = 0;
  size_t mismatches = 0;
  char buf[65536];
  while (got < total) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0)
      break;
    auto n = read(fd, buf, sizeof(buf));
    if (n <= 0)
      break;
    for (ssize_t i = 0; i < n; ++i)
      mismatches += buf[i] != pattern(got + static_cast<size_t>(i));
    got += static_cast<size_t>(n);
  }
  writer.join();
  CAF_CHECK(written);
  CAF_CHECK_EQUAL(got, total);
  CAF_CHECK_EQUAL(mismatches, 0u);
  close(fd);
  CAF_CHECK_EQUAL(f.rejected("http"), "0");
  CAF_CHECK_EQUAL(f.rejected("empty"), "0");
}

CAF_TEST(wrong clients are closed and counted by reason) {
  fixture f{300ms};
  auto probe = [&](const std::string& bytes) {
    int fd = tcp_connect(f.guard->port());
    CAF_REQUIRE_GREATER_OR_EQUAL(fd, 0);
    send_all(fd, bytes.data(), bytes.size());
    CAF_CHECK(closed_by_peer(fd, 3s));
    close(fd);
  };
  probe("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  probe(std::string(64, '\xff'));
  probe(std::string("\x01\x00", 2)); // silent mid-header: the timeout
  probe(""); // silent from the start
  CAF_CHECK_EQUAL(f.rejected("http"), "1");
  CAF_CHECK_EQUAL(f.rejected("bad_handshake"), "1");
  CAF_CHECK_EQUAL(f.rejected("timeout"), "2");
  // Closing mid-header, and connecting only (a port scanner).
  int fd = tcp_connect(f.guard->port());
  send_all(fd, "\x01", 1);
  close(fd);
  close(tcp_connect(f.guard->port()));
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while ((f.rejected("closed_early") != "1" || f.rejected("empty") != "1")
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  CAF_CHECK_EQUAL(f.rejected("closed_early"), "1");
  CAF_CHECK_EQUAL(f.rejected("empty"), "1");
  // And the guard still relays.
  fd = tcp_connect(f.guard->port());
  send_all(fd, caf_client_header.data(), basp_header_size);
  CAF_CHECK_EQUAL(read_exact(fd, basp_header_size).size(), basp_header_size);
  close(fd);
}

CAF_TEST(closing the port keeps relayed connections) {
  fixture f;
  int fd = tcp_connect(f.guard->port());
  send_all(fd, caf_client_header.data(), basp_header_size);
  CAF_REQUIRE_EQUAL(read_exact(fd, basp_header_size).size(), basp_header_size);
  f.guard->stop_accepting();
  auto deadline = std::chrono::steady_clock::now() + 3s;
  int late = -1;
  while ((late = tcp_connect(f.guard->port())) >= 0
         && std::chrono::steady_clock::now() < deadline) {
    close(late);
    std::this_thread::sleep_for(10ms);
  }
  CAF_CHECK_LESS(late, 0);
  send_all(fd, "still here", 10);
  CAF_CHECK_EQUAL(read_exact(fd, 10), "still here");
  close(fd);
}

CAF_TEST(a busy polling guard relays and sleeps once traffic stops) {
  fixture f{10s, 20ms};
  int fd = tcp_connect(f.guard->port());
  CAF_REQUIRE_GREATER_OR_EQUAL(fd, 0);
  send_all(fd, caf_client_header.data(), basp_header_size);
  CAF_REQUIRE_EQUAL(read_exact(fd, basp_header_size).size(), basp_header_size);
  for (int i = 0; i < 50; ++i) {
    auto message = "round trip " + std::to_string(i);
    send_all(fd, message.data(), message.size());
    CAF_CHECK_EQUAL(read_exact(fd, message.size()), message);
  }
  // Idle: the guard polls for 20 ms after the last bytes, then sleeps. A
  // guard that kept polling would burn the whole second on its core.
  auto cpu_seconds = [] {
    rusage use{};
    getrusage(RUSAGE_SELF, &use);
    auto s = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
    return s(use.ru_utime) + s(use.ru_stime);
  };
  std::this_thread::sleep_for(100ms);
  auto before = cpu_seconds();
  std::this_thread::sleep_for(1s);
  CAF_CHECK_LESS(cpu_seconds() - before, 0.5);
  close(fd);
}

CAF_TEST(a port in use is an error naming the cause) {
  fixture f;
  port_guard::options opts;
  opts.host = "127.0.0.1";
  opts.port = f.guard->port();
  auto second = port_guard::listen(std::move(opts));
  CAF_REQUIRE(!second);
  CAF_CHECK_NOT_EQUAL(describe(second.error()).find("Address already in use"),
                      std::string::npos);
}
