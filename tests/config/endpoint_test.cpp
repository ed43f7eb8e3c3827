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
  CAF_CHECK_EQUAL(x->host, "cache.local");
  CAF_CHECK_EQUAL(x->port, default_redis_port);
  auto y = parse_redis_url("redis://10.0.0.5:6380");
  CAF_REQUIRE(y);
  CAF_CHECK_EQUAL(y->host, "10.0.0.5");
  CAF_CHECK_EQUAL(y->port, 6380);
  for (auto bad : {"", "redis://", "redis://:6379", "http://host:6379",
                   "host:6379", "redis://host:0", "redis://host:99999",
                   "redis://host:port", "redis://host:6379/0", "rediss://host"})
    CAF_CHECK_EQUAL(accepted(parse_redis_url, bad), "");
}

CAF_TEST(devices are cpu or cuda colon index) {
  CAF_CHECK(parse_device("cpu") == std::optional<int>{-1});
  CAF_CHECK(parse_device("cuda:0") == std::optional<int>{0});
  CAF_CHECK(parse_device("cuda:12") == std::optional<int>{12});
  for (auto bad : {"", "gpu", "cuda", "cuda:", "cuda:-1", "cuda:x", "cuda:1.5",
                   "CUDA:0", "cuda:99999999999", " cpu"})
    CAF_CHECK_EQUAL(accepted(parse_device, bad), "");
}
