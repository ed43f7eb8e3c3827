#define CAF_SUITE config.endpoint

#include "config/endpoint.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

/// Returns `text` if `parser` accepts it, so that a failed check names the
/// culprit.
template <class Parser>
std::string accepted(Parser parser, const char* text) {
  return parser(text) ? std::string{text} : std::string{};
}

} // namespace

CAF_TEST(host and port) {
  auto x = parse_endpoint("127.0.0.1:7001");
  CAF_REQUIRE(x);
  CAF_CHECK_EQUAL(x->host, "127.0.0.1");
  CAF_CHECK_EQUAL(x->port, 7001);
  auto y = parse_endpoint("[::1]:65535");
  CAF_REQUIRE(y);
  CAF_CHECK_EQUAL(y->host, "::1");
  CAF_CHECK_EQUAL(y->port, 65535);
  CAF_CHECK(parse_endpoint("worker-3.example.com:1"));
  for (auto bad :
       {"", "localhost", "localhost:", ":7001", "host:0", "host:65536",
        "host:-1", "host:+80", "host: 80", "a b:80", "host:80:90", "::1:80",
        "[::1]", "[]:80", "[::1]80", "http://host:80", "host:80/x"})
    CAF_CHECK_EQUAL(accepted(parse_endpoint, bad), "");
}

CAF_TEST(redis urls default to port 6379) {
  auto x = parse_redis_url("redis://cache.local");
  CAF_REQUIRE(x);
  CAF_CHECK_EQUAL(x->server.host, "cache.local");
  CAF_CHECK_EQUAL(x->server.port, default_redis_port);
  CAF_CHECK_EQUAL(x->database, 0);
  CAF_CHECK(x->password.empty());
  auto y = parse_redis_url("redis://10.0.0.5:6380");
  CAF_REQUIRE(y);
  CAF_CHECK_EQUAL(y->server.host, "10.0.0.5");
  CAF_CHECK_EQUAL(y->server.port, 6380);
  for (auto bad : {"", "redis://", "redis://:6379", "http://host:6379",
                   "host:6379", "redis://host:0", "redis://host:99999",
                   "redis://host:port", "rediss://host", "redis://host/x",
                   "redis://host:6379/-1", "redis://host/2?x=1",
                   "redis://secret@host", "redis://:@host",
                   "redis://:a%2@host", "redis://u:p@"})
    CAF_CHECK_EQUAL(accepted(parse_redis_url, bad), "");
}

CAF_TEST(redis urls carry a database and credentials) {
  // The seed's own default form.
  auto x = parse_redis_url("redis://127.0.0.1:6379/0");
  CAF_REQUIRE(x);
  CAF_CHECK_EQUAL(x->server.port, 6379);
  CAF_CHECK_EQUAL(x->database, 0);
  auto y = parse_redis_url("redis://:secret@cache:6380/2");
  CAF_REQUIRE(y);
  CAF_CHECK_EQUAL(y->server.host, "cache");
  CAF_CHECK_EQUAL(y->server.port, 6380);
  CAF_CHECK_EQUAL(y->user, "");
  CAF_CHECK_EQUAL(y->password, "secret");
  CAF_CHECK_EQUAL(y->database, 2);
  CAF_CHECK_EQUAL(render_redis_target(*y), "cache:6380/2");
  auto z = parse_redis_url("redis://volt:p%40ss:w@rd@[::1]/15");
  CAF_REQUIRE(z);
  CAF_CHECK_EQUAL(z->user, "volt");
  CAF_CHECK_EQUAL(z->password, "p@ss:w@rd");
  CAF_CHECK_EQUAL(z->server.host, "::1");
  CAF_CHECK_EQUAL(render_redis_target(*z), "[::1]:6379/15");
  CAF_CHECK(parse_redis_url("redis://host/"));
  CAF_CHECK_EQUAL(redact_redis_url("redis://u:secret@host:1/2"),
                  "redis://***@host:1/2");
  CAF_CHECK_EQUAL(redact_redis_url("http://x"), "http://x");
}

CAF_TEST(endpoints render ipv6 hosts in brackets) {
  CAF_CHECK_EQUAL(render_endpoint("::1", 7001), "[::1]:7001");
  CAF_CHECK_EQUAL(render_endpoint("fe80::1:2", 80), "[fe80::1:2]:80");
  CAF_CHECK_EQUAL(render_endpoint("10.0.0.5", 7001), "10.0.0.5:7001");
  CAF_CHECK_EQUAL(render_endpoint("worker-3", 1), "worker-3:1");
  auto back = parse_endpoint(render_endpoint("::1", 7001));
  CAF_REQUIRE(back);
  CAF_CHECK_EQUAL(back->host, "::1");
}

CAF_TEST(devices are cpu or cuda colon index) {
  CAF_CHECK(parse_device("cpu") == std::optional<int>{-1});
  CAF_CHECK(parse_device("cuda:0") == std::optional<int>{0});
  CAF_CHECK(parse_device("cuda:12") == std::optional<int>{12});
  for (auto bad : {"", "gpu", "cuda", "cuda:", "cuda:-1", "cuda:x", "cuda:1.5",
                   "CUDA:0", "cuda:99999999999", " cpu"})
    CAF_CHECK_EQUAL(accepted(parse_device, bad), "");
}
