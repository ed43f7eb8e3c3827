#define CAF_SUITE net.redis

// Redis discovery with real redis-server processes: workers register with TTL
// keys kept alive by heartbeats, the router follows them, Redis may be down at
// start or restart mid-run without failing anything in flight, a worker
// leaves cleanly on SIGTERM, and with a cluster secret only records signed
// with it are used.

#include <cstdlib>

#include <sys/stat.h>

#include "net/signed_worker_record.hpp"
#include "net/worker_record.hpp"
#include "tests/cluster.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

std::string redis_extra(const std::string& url) {
  return "[discovery]\nmode = \"redis\"\nredis_url = \"" + url
         + "\"\nheartbeat_ms = 100\nttl_ms = 600\npoll_ms = 100\n";
}

std::string worker_extra(const std::string& experts, const std::string& url) {
  return "[worker]\nexperts = [" + experts + "]\n" + redis_extra(url);
}

/// Runs redis-cli against `port`; returns its stdout without the newline.
std::string redis_cli(uint16_t port, std::vector<std::string> args) {
  std::vector<std::string> argv{"/usr/bin/redis-cli", "-p",
                                std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  auto out = run_process(argv, std::chrono::seconds{5}).out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

/// Waits until `pred` holds, checking every 50 ms, for at most `timeout`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  return pred();
}

/// The Redis that scripts/test.sh started, or a private one.
struct shared_or_private_redis {
  std::unique_ptr<redis_process> own;
  std::string url;
  uint16_t port = 0;

  shared_or_private_redis() {
    if (const char* env = std::getenv("VOLT_TEST_REDIS_URL")) {
      url = env;
      port = static_cast<uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
    } else {
      own = std::make_unique<redis_process>();
      url = own->url();
      port = own->port();
    }
  }
};

} // namespace

CAF_TEST(workers register in redis and the router finds them) {
  shared_or_private_redis redis;
  temp_dir dir;
  auto w1 = free_port(), w2 = free_port(), r = free_port();
  // Ids unique per run: the shared Redis may hold other tests' workers.
  auto tag = std::to_string(getpid());
  node_process worker1{
    write_node_toml(dir, {"w1-" + tag, "worker", w1, 0,
                          worker_extra("0, 1, 2, 3", redis.url)})};
  node_process worker2{
    write_node_toml(dir, {"w2-" + tag, "worker", w2, 0,
                          worker_extra("4, 5, 6, 7", redis.url)})};
  CAF_REQUIRE(worker1.wait_ready());
  CAF_REQUIRE(worker2.wait_ready());
  auto key = worker_record_key("w1-" + tag);
  CAF_REQUIRE(eventually(
    [&] {
      return !redis_cli(redis.port, {"GET", key}).empty();
    },
    std::chrono::seconds{5}));
  auto record = parse_worker_record(redis_cli(redis.port, {"GET", key}));
  CAF_REQUIRE(record);
  CAF_CHECK_EQUAL(record->port, w1);
  CAF_CHECK_EQUAL(record->experts, std::vector<uint32_t>({0, 1, 2, 3}));
  CAF_CHECK_EQUAL(record->device, "cpu");
  auto ttl = std::atoi(redis_cli(redis.port, {"PTTL", key}).c_str());
  CAF_CHECK_GREATER(ttl, 0);
  CAF_CHECK_LESS_OR_EQUAL(ttl, 600);
  node_process router{write_node_toml(dir, {"router-" + tag, "router", r, 0,
                                            redis_extra(redis.url)})};
  CAF_REQUIRE(router.wait_ready());
  auto remote = run_generate({"--connect", "127.0.0.1:" + std::to_string(r)},
                             long_prompt(17), 10);
  CAF_REQUIRE_EQUAL(remote.exit_code, 0);
  CAF_CHECK_EQUAL(without_timings(remote.out),
                  without_timings(standalone_json(long_prompt(17), 10)));
  // SIGTERM: the worker removes its key before it exits.
  CAF_CHECK_EQUAL(worker1.stop(), 0);
  CAF_CHECK(redis_cli(redis.port, {"EXISTS", key}) == "0");
  CAF_CHECK(worker1.log().find("removed " + key) != std::string::npos);
  // A worker killed outright: its key expires after the TTL.
  auto key2 = worker_record_key("w2-" + tag);
  worker2.signal(SIGKILL);
  CAF_CHECK(eventually(
    [&] {
      return redis_cli(redis.port, {"EXISTS", key2}) == "0";
    },
    std::chrono::seconds{3}));
}

CAF_TEST(nodes started while redis is down register once it is up) {
  auto redis_port = free_port();
  auto url = "redis://127.0.0.1:" + std::to_string(redis_port);
  temp_dir dir;
  auto w = free_port(), r = free_port();
  // One of the clusters that keeps plaintext links.
  node_process worker{write_node_toml(
    dir, {"w", "worker", w, 0, worker_extra("0, 1, 2, 3, 4, 5, 6, 7", url),
          tiny_mixtral_dir(), insecure_security_toml})};
  node_process router{
    write_node_toml(dir, {"router", "router", r, 0, redis_extra(url),
                          tiny_mixtral_dir(), insecure_security_toml})};
  CAF_CHECK(
    worker.wait_log("cannot register in Redis", std::chrono::seconds{10}));
  CAF_CHECK(router.wait_log("retrying", std::chrono::seconds{10}));
  redis_process redis{redis_port};
  CAF_REQUIRE(router.wait_ready(std::chrono::seconds{15}));
  auto remote = run_generate({"--connect", "127.0.0.1:" + std::to_string(r)},
                             "203", 12, {}, {});
  CAF_REQUIRE_EQUAL(remote.exit_code, 0);
  CAF_CHECK_NOT_EQUAL(remote.out.find("[170,288,170,288,170,170,288,170,288,"
                                      "170,170,288]"),
                      std::string::npos);
}

CAF_TEST(a redis restart fails nothing in flight and workers re register) {
  redis_process redis;
  temp_dir dir;
  auto model = write_deep_model(dir);
  auto w1 = free_port(), w2 = free_port(), r = free_port();
  node_process worker1{
    write_node_toml(dir, {"w1", "worker", w1, 0,
                          worker_extra("0, 1, 2, 3", redis.url()), model})};
  node_process worker2{
    write_node_toml(dir, {"w2", "worker", w2, 0,
                          worker_extra("4, 5, 6, 7", redis.url()), model})};
  node_process router{write_node_toml(dir, {"router", "router", r, 0,
                                            redis_extra(redis.url()), model})};
  CAF_REQUIRE(router.wait_ready());
  auto want = without_timings(standalone_json(long_prompt(40), 600, model));
  child_process client{{volt_node_binary(), "generate", "--connect",
                        "127.0.0.1:" + std::to_string(r), "--prompt-ids",
                        long_prompt(40), "--max-new-tokens", "600",
                        "--ignore-eos", "--json"},
                       client_tls_env()};
  std::this_thread::sleep_for(std::chrono::milliseconds{200});
  redis.stop();
  std::this_thread::sleep_for(std::chrono::milliseconds{500});
  redis.start(); // same port, empty: no key survived
  CAF_REQUIRE_EQUAL(client.wait(std::chrono::seconds{60}), 0);
  CAF_CHECK_EQUAL(without_timings(client.out()), want);
  CAF_CHECK(eventually(
    [&] {
      return redis_cli(redis.port(), {"EXISTS", worker_record_key("w1")}) == "1"
             && redis_cli(redis.port(), {"EXISTS", worker_record_key("w2")})
                  == "1";
    },
    std::chrono::seconds{5}));
  CAF_CHECK(worker1.wait_log("Redis is back", std::chrono::seconds{2}));
  // A worker that joins after the restart is found through the new Redis.
  auto w3 = free_port();
  node_process worker3{write_node_toml(
    dir, {"w3", "worker", w3, 0,
          worker_extra("0, 1, 2, 3, 4, 5, 6, 7", redis.url()), model})};
  CAF_CHECK(router.wait_log("127.0.0.1:" + std::to_string(w3) + " joined",
                            std::chrono::seconds{10}));
}

CAF_TEST(redis urls with a password and a database select them) {
  redis_process redis{0, {"--requirepass", "s3cr:t@x"}};
  auto base = "127.0.0.1:" + std::to_string(redis.port());
  // The password holds ':' and '@'; percent-encoding works too.
  auto url = "redis://:s3cr%3At@x@" + base + "/2";
  temp_dir dir;
  auto w = free_port(), r = free_port();
  node_process worker{write_node_toml(
    dir, {"w", "worker", w, 0, worker_extra("0, 1, 2, 3, 4, 5, 6, 7", url)})};
  CAF_REQUIRE(worker.wait_ready());
  auto in_db = [&](const std::string& db) {
    return redis_cli(redis.port(), {"--no-auth-warning", "-a", "s3cr:t@x",
                                    "-n", db, "EXISTS",
                                    worker_record_key("w")});
  };
  CAF_REQUIRE(eventually([&] { return in_db("2") == "1"; },
                         std::chrono::seconds{5}));
  CAF_CHECK_EQUAL(in_db("0"), "0");
  node_process router{
    write_node_toml(dir, {"router", "router", r, 0, redis_extra(url)})};
  CAF_REQUIRE(router.wait_ready());
  auto remote = run_generate({"--connect", "127.0.0.1:" + std::to_string(r)},
                             "203", 4);
  CAF_CHECK_EQUAL(remote.exit_code, 0);
  // Without the password: Redis' own answer, and never the password.
  auto w2 = free_port();
  node_process stranger{
    write_node_toml(dir, {"w2", "worker", w2, 0,
                          worker_extra("0", "redis://" + base + "/0")})};
  CAF_CHECK(stranger.wait_log("cannot register in Redis (redis " + base
                                + "/0: NOAUTH",
                              std::chrono::seconds{10}));
  for (const auto* log : {&worker.log(), &router.log(), &stranger.log()})
    CAF_CHECK_EQUAL(log->find("s3cr"), std::string::npos);
}

CAF_TEST(a worker gone from redis is no longer retried) {
  redis_process redis;
  temp_dir dir;
  auto w1 = free_port(), w2 = free_port(), r = free_port();
  node_process worker1{
    write_node_toml(dir, {"w1", "worker", w1, 0,
                          worker_extra("0, 1, 2, 3, 4, 5, 6, 7", redis.url())})};
  node_process worker2{
    write_node_toml(dir, {"w2", "worker", w2, 0,
                          worker_extra("0, 1, 2, 3, 4, 5, 6, 7", redis.url())})};
  node_process router{write_node_toml(dir, {"router", "router", r, 0,
                                            redis_extra(redis.url())})};
  CAF_REQUIRE(router.wait_ready());
  auto name = "127.0.0.1:" + std::to_string(w1);
  CAF_REQUIRE(router.wait_log(name + " joined", std::chrono::seconds{10}));
  // Killed without deregistering: its key expires after the TTL.
  worker1.signal(SIGKILL);
  CAF_REQUIRE(router.wait_log(name + ": no longer registered in Redis",
                              std::chrono::seconds{10}));
  auto seen = count_lines(router.log(), name);
  router.read_log(std::chrono::seconds{3});
  CAF_CHECK_EQUAL(count_lines(router.log(), name), seen);
  // The other worker still serves.
  auto remote = run_generate({"--connect", "127.0.0.1:" + std::to_string(r)},
                             "203", 4);
  CAF_CHECK_EQUAL(remote.exit_code, 0);
}

CAF_TEST(with a cluster secret forged and replayed records are ignored) {
  shared_or_private_redis redis;
  // The seed's own form of a URL, with the database index.
  auto url = redis.url + "/0";
  temp_dir dir;
  auto secret_file = dir.file("cluster_secret");
  write_text(secret_file, "3f1c9a0e5b7d2468ace0bdf13579b2c4e6f8091a2b3c4d5e6f708192a3b4c5d6\n");
  ::chmod(secret_file.c_str(), 0600);
  // The [security] section: the cluster's TLS files and the secret file.
  auto security = tls_security_toml() + "cluster_secret_file = \""
                  + secret_file + "\"\n";
  auto all = std::string{"0, 1, 2, 3, 4, 5, 6, 7"};
  auto tag = std::to_string(getpid());
  auto good = free_port(), evil = free_port(), gone = free_port(),
       r = free_port();
  // A worker on other weights of the same shapes, reachable but not
  // registered: what a forged record would point the router at.
  auto other = write_other_weights(dir);
  node_process evil_worker{write_node_toml(
    dir, {"evil-" + tag, "worker", evil, 0, "[worker]\nexperts = [" + all + "]\n",
          other})};
  node_process good_worker{write_node_toml(
    dir, {"good-" + tag, "worker", good, 0, worker_extra(all, url),
          tiny_mixtral_dir(), security})};
  CAF_REQUIRE(evil_worker.wait_ready());
  CAF_REQUIRE(good_worker.wait_ready());
  CAF_CHECK(good_worker.wait_log("signing its Redis worker records",
                                 std::chrono::seconds{1}));
  // The forged records: the format and key the code uses, unsigned and
  // signed with another secret; they expire by themselves should the test
  // stop early.
  worker_record forged{"evil-" + tag, "127.0.0.1", evil,
                       {0, 1, 2, 3, 4, 5, 6, 7}, "cpu", 0.0};
  auto evil_key = worker_record_key(forged.id);
  CAF_REQUIRE_EQUAL(redis_cli(redis.port, {"SET", evil_key, to_json(forged),
                                           "PX", "120000"}),
                    "OK");
  forged.id = "evil2-" + tag;
  auto evil2_key = worker_record_key(forged.id);
  auto wrong = seal_worker_record(forged, evil2_key,
                                  "not the secret of this cluster, though long",
                                  unix_ms_now() + 120000);
  CAF_REQUIRE_EQUAL(redis_cli(redis.port, {"SET", evil2_key, wrong, "PX",
                                           "120000"}),
                    "OK");
  node_process router{write_node_toml(
    dir, {"router-" + tag, "router", r, 0, redis_extra(url),
          tiny_mixtral_dir(), security})};
  CAF_REQUIRE(router.wait_ready());
  CAF_CHECK(router.wait_log("ignoring the Redis record " + evil_key
                              + ": not signed, and [security] cluster_secret "
                                "is set",
                            std::chrono::seconds{10}));
  CAF_CHECK(router.wait_log("ignoring the Redis record " + evil2_key
                              + ": wrong signature",
                            std::chrono::seconds{10}));
  auto want = without_timings(standalone_json(long_prompt(17), 10));
  for (int i = 0; i < 3; ++i) {
    auto remote = run_generate({"--connect", "127.0.0.1:" + std::to_string(r)},
                               long_prompt(17), 10);
    CAF_REQUIRE_EQUAL(remote.exit_code, 0);
    CAF_CHECK_EQUAL(without_timings(remote.out), want);
  }
  // Never connected to, and each refusal logged once although seen on every
  // poll.
  auto evil_address = "127.0.0.1:" + std::to_string(evil);
  CAF_CHECK_EQUAL(count_lines(router.log(), evil_address), 0u);
  CAF_CHECK_EQUAL(count_lines(router.log(), evil_key + ":"), 1u);
  // A signed record captured and written back after its worker died is void
  // once it expires, as the key would have.
  auto gone_id = "gone-" + tag;
  node_process gone_worker{write_node_toml(
    dir, {gone_id, "worker", gone, 0, worker_extra(all, url),
          tiny_mixtral_dir(), security})};
  CAF_REQUIRE(gone_worker.wait_ready());
  auto gone_key = worker_record_key(gone_id);
  CAF_REQUIRE(eventually(
    [&] { return !redis_cli(redis.port, {"GET", gone_key}).empty(); },
    std::chrono::seconds{5}));
  auto captured = redis_cli(redis.port, {"GET", gone_key});
  gone_worker.signal(SIGKILL);
  CAF_REQUIRE(eventually(
    [&] { return redis_cli(redis.port, {"EXISTS", gone_key}) == "0"; },
    std::chrono::seconds{5}));
  CAF_REQUIRE_EQUAL(redis_cli(redis.port, {"SET", gone_key, captured, "PX",
                                           "120000"}),
                    "OK");
  CAF_CHECK(router.wait_log("ignoring the Redis record " + gone_key
                              + ": expired",
                            std::chrono::seconds{10}));
  for (const auto& key : {evil_key, evil2_key, gone_key})
    redis_cli(redis.port, {"DEL", key});
}
