#define CAF_SUITE config.node_config

#include "config/node_config.hpp"

#include <cstdio>
#include <fstream>

#include <unistd.h>

#include "tests/config/config_test_helpers.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

CAF_TEST(defaults match the documented values) {
  node_config cfg;
  CAF_CHECK_EQUAL(cfg.node.id, "volt-1");
  CAF_CHECK(cfg.node.role == node_role::standalone);
  CAF_CHECK_EQUAL(cfg.network.host, "127.0.0.1");
  CAF_CHECK_EQUAL(cfg.network.port, 7700);
  CAF_CHECK_EQUAL(cfg.model.path, "");
  CAF_CHECK(cfg.worker.experts.empty());
  CAF_CHECK_EQUAL(cfg.worker.device, "cpu");
  CAF_CHECK(cfg.router.workers.empty());
  CAF_CHECK(cfg.discovery.mode == discovery_mode::static_list);
  CAF_CHECK_EQUAL(cfg.discovery.redis_url, "redis://127.0.0.1:6379");
  CAF_CHECK_EQUAL(cfg.metrics.port, 0);
  CAF_CHECK_EQUAL(cfg.source, "");
}

CAF_TEST(enums render as their toml spelling) {
  CAF_CHECK_EQUAL(to_string(node_role::standalone), "standalone");
  CAF_CHECK_EQUAL(to_string(node_role::router), "router");
  CAF_CHECK_EQUAL(to_string(node_role::worker), "worker");
  CAF_CHECK_EQUAL(to_string(discovery_mode::static_list), "static");
  CAF_CHECK_EQUAL(to_string(discovery_mode::redis), "redis");
}

CAF_TEST(a file with only the model path is a standalone node with defaults) {
  auto cfg = parse("[model]\npath = \"m\"\n");
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK(cfg->node.role == node_role::standalone);
  CAF_CHECK_EQUAL(cfg->node.id, "volt-1");
  CAF_CHECK_EQUAL(cfg->network.port, 7700);
  CAF_CHECK_EQUAL(cfg->model.path, "m");
  CAF_CHECK_EQUAL(cfg->source, "node.toml");
}

CAF_TEST(full standalone file) {
  auto cfg = parse(R"([node]
id = "solo"
role = "standalone"
[network]
host = "0.0.0.0"
port = 7701
[model]
path = "tests/data/tiny-mixtral-a"
[worker]
device = "cuda:1"
[metrics]
port = 9100
)");
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->node.id, "solo");
  CAF_CHECK(cfg->node.role == node_role::standalone);
  CAF_CHECK_EQUAL(cfg->network.host, "0.0.0.0");
  CAF_CHECK_EQUAL(cfg->network.port, 7701);
  CAF_CHECK_EQUAL(cfg->model.path, "tests/data/tiny-mixtral-a");
  CAF_CHECK_EQUAL(cfg->worker.device, "cuda:1");
  CAF_CHECK_EQUAL(cfg->metrics.port, 9100);
}

CAF_TEST(full worker file) {
  auto cfg = parse(worker_toml);
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->node.id, "worker-1");
  CAF_CHECK(cfg->node.role == node_role::worker);
  CAF_CHECK_EQUAL(cfg->network.port, 7801);
  CAF_CHECK(cfg->worker.experts == std::vector<uint32_t>({0, 1, 2, 3}));
  CAF_CHECK_EQUAL(cfg->worker.device, "cpu");
}

CAF_TEST(full router file in static mode) {
  auto cfg = parse(R"([node]
id = "router-1"
role = "router"
[network]
port = 7700
[model]
path = "tests/data/tiny-mixtral-a"
[router]
workers = ["127.0.0.1:7801", "[::1]:7802", "worker-3.local:7803"]
[discovery]
mode = "static"
[metrics]
port = 9100
)");
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK(cfg->node.role == node_role::router);
  CAF_CHECK(cfg->discovery.mode == discovery_mode::static_list);
  CAF_REQUIRE_EQUAL(cfg->router.workers.size(), 3u);
  CAF_CHECK_EQUAL(cfg->router.workers[1], "[::1]:7802");
  CAF_CHECK_EQUAL(cfg->metrics.port, 9100);
}

CAF_TEST(a router in redis mode needs no worker list) {
  auto cfg = parse(R"([node]
role = "router"
[model]
path = "m"
[discovery]
mode = "redis"
redis_url = "redis://cache.local"
)");
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK(cfg->discovery.mode == discovery_mode::redis);
  CAF_CHECK_EQUAL(cfg->discovery.redis_url, "redis://cache.local");
  CAF_CHECK(cfg->router.workers.empty());
}

CAF_TEST(keys of sections the role does not use are allowed) {
  // One file for every node of a cluster; VOLT_NODE_ROLE picks what each
  // process runs.
  auto cfg = parse(worker_toml + "[router]\nworkers = [\"127.0.0.1:7801\"]\n");
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->router.workers.size(), 1u);
}

CAF_TEST(load reads a file and names it as the source) {
  auto file = "/tmp/volt-config-test-" + std::to_string(getpid()) + ".toml";
  {
    std::ofstream out{file};
    out << worker_toml;
  }
  auto cfg = load_node_config(file, {});
  std::remove(file.c_str());
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->source, file);
  CAF_CHECK(cfg->node.role == node_role::worker);
}

CAF_TEST(check against model accepts experts inside the model) {
  auto cfg = parse(worker_toml);
  CAF_REQUIRE(cfg);
  CAF_CHECK(!check_against_model(*cfg, 8, "m/config.json"));
  CAF_CHECK(!check_against_model(*cfg, 4, "m/config.json"));
}

CAF_TEST(check against model rejects experts outside the model) {
  auto cfg = parse(worker_toml);
  CAF_REQUIRE(cfg);
  cfg->worker.experts.push_back(9);
  auto err = check_against_model(*cfg, 8, "/path/config.json");
  CHECK_CONFIG_ERROR(err, "node.toml", "[worker] experts");
  CAF_CHECK_EQUAL(describe(err),
                  "node.toml: [worker] experts: expert 9 is outside the model "
                  "(8 experts in /path/config.json)");
  CHECK_CONFIG_ERROR(check_against_model(*cfg, 3, "/path/config.json"),
                     "expert 3 is outside the model (3 experts");
  CHECK_CONFIG_ERROR(
    check_against_model(*cfg, 1, "/path/config.json"),
    "expert 1 is outside the model (1 expert in /path/config.json)");
}
