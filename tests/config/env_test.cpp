#define CAF_SUITE config.env

// VOLT_<SECTION>_<KEY> environment overrides.

#include "config/node_config.hpp"

#include <cstdlib>
#include <set>

#include "config/config_keys.hpp"
#include "tests/config/config_test_helpers.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

CAF_TEST(environment overrides the file) {
  env_map env{{"VOLT_NETWORK_PORT", "7901"},
              {"VOLT_NODE_ID", "worker-9"},
              {"VOLT_WORKER_EXPERTS", "4, 5,6"},
              {"VOLT_WORKER_DEVICE", "cuda:1"}};
  auto cfg = parse(worker_toml, env);
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->network.port, 7901);
  CAF_CHECK_EQUAL(cfg->node.id, "worker-9");
  CAF_CHECK(cfg->worker.experts == std::vector<uint32_t>({4, 5, 6}));
  CAF_CHECK_EQUAL(cfg->worker.device, "cuda:1");
  CAF_CHECK_EQUAL(cfg->network.host,
                  "127.0.0.1"); // untouched keys keep the file's value
}

CAF_TEST(one file serves several roles through VOLT_NODE_ROLE) {
  auto text = worker_toml + "[router]\nworkers = [\"127.0.0.1:7801\"]\n";
  auto as_router = parse(text, {{"VOLT_NODE_ROLE", "router"}});
  CAF_REQUIRE_EQUAL(message_of(as_router), "");
  CAF_CHECK(as_router->node.role == node_role::router);
  auto as_worker = parse(text);
  CAF_REQUIRE_EQUAL(message_of(as_worker), "");
  CAF_CHECK(as_worker->node.role == node_role::worker);
}

CAF_TEST(router workers and discovery from the environment) {
  env_map env{{"VOLT_NODE_ROLE", "router"},
              {"VOLT_ROUTER_WORKERS", "127.0.0.1:7001,127.0.0.1:7002"},
              {"VOLT_DISCOVERY_MODE", "redis"},
              {"VOLT_DISCOVERY_REDIS_URL", "redis://10.0.0.5:6380"},
              {"VOLT_METRICS_PORT", "9100"}};
  auto cfg = parse(worker_toml, env);
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK(cfg->node.role == node_role::router);
  CAF_CHECK(cfg->router.workers
            == std::vector<std::string>({"127.0.0.1:7001", "127.0.0.1:7002"}));
  CAF_CHECK(cfg->discovery.mode == discovery_mode::redis);
  CAF_CHECK_EQUAL(cfg->discovery.redis_url, "redis://10.0.0.5:6380");
  CAF_CHECK_EQUAL(cfg->metrics.port, 9100);
}

CAF_TEST(environment only config) {
  auto cfg
    = default_node_config({{"VOLT_MODEL_PATH", "tests/data/tiny-mixtral-a"},
                           {"VOLT_NODE_ROLE", "worker"},
                           {"VOLT_WORKER_EXPERTS", "0,1"},
                           {"VOLT_NETWORK_PORT", "7801"}});
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->source, "");
  CAF_CHECK(cfg->node.role == node_role::worker);
  CAF_CHECK(cfg->worker.experts == std::vector<uint32_t>({0, 1}));
  CAF_CHECK_EQUAL(cfg->network.port, 7801);
  CAF_CHECK_EQUAL(cfg->node.id, "volt-1");
}

CAF_TEST(defaults alone lack a model path) {
  CHECK_CONFIG_ERROR(default_node_config({}),
                     "environment: [model] path: must be set",
                     "VOLT_MODEL_PATH");
  auto worker = default_node_config(
    {{"VOLT_MODEL_PATH", "m"}, {"VOLT_NODE_ROLE", "worker"}});
  CAF_REQUIRE(worker);
  CAF_CHECK(worker->worker.experts.empty()); // hosts what routers spawn
}

CAF_TEST(bad values name the variable) {
  CAF_CHECK_EQUAL(
    message_of(parse(worker_toml, {{"VOLT_NETWORK_PORT", "abc"}})),
    "environment: VOLT_NETWORK_PORT: expected an integer in [1, 65535], got "
    "\"abc\"");
  CAF_CHECK_EQUAL(
    message_of(parse(worker_toml, {{"VOLT_NETWORK_PORT", "0"}})),
    "environment: VOLT_NETWORK_PORT: expected an integer in [1, 65535], got 0");
  CHECK_CONFIG_ERROR(parse(worker_toml, {{"VOLT_NETWORK_PORT", "77e1"}}),
                     "environment: VOLT_NETWORK_PORT", "got \"77e1\"");
  CHECK_CONFIG_ERROR(parse(worker_toml, {{"VOLT_NETWORK_PORT", ""}}),
                     "environment: VOLT_NETWORK_PORT", "got \"\"");
  CHECK_CONFIG_ERROR(
    parse(worker_toml, {{"VOLT_METRICS_PORT", "99999999999999999999"}}),
    "environment: VOLT_METRICS_PORT", "expected an integer in [0, 65535]");
  CHECK_CONFIG_ERROR(
    parse(worker_toml, {{"VOLT_WORKER_EXPERTS", "0,x"}}),
    "environment: VOLT_WORKER_EXPERTS: expected a comma-separated list of "
    "integers in [0, 4294967295], got \"0,x\"");
  CHECK_CONFIG_ERROR(parse(worker_toml, {{"VOLT_WORKER_EXPERTS", "0,,1"}}),
                     "environment: VOLT_WORKER_EXPERTS");
  CHECK_CONFIG_ERROR(parse(worker_toml, {{"VOLT_WORKER_EXPERTS", "1,-2"}}),
                     "environment: VOLT_WORKER_EXPERTS: element 1", "got -2");
  CHECK_CONFIG_ERROR(
    parse(worker_toml, {{"VOLT_WORKER_EXPERTS", "2,2"}}),
    "environment: VOLT_WORKER_EXPERTS: expert 2 is listed twice");
  CAF_CHECK_EQUAL(
    message_of(parse(worker_toml, {{"VOLT_NODE_ROLE", "wroker"}})),
    "environment: VOLT_NODE_ROLE: unknown role 'wroker' (expected standalone, "
    "router or worker; did you mean 'worker'?)");
  CAF_CHECK_EQUAL(
    message_of(parse(worker_toml, {{"VOLT_NODE_ROLE", "worker\nINFO x"}})),
    "environment: VOLT_NODE_ROLE: unknown role 'worker\\nINFO x' (expected "
    "standalone, router or worker)");
  CHECK_CONFIG_ERROR(
    parse(worker_toml, {{"VOLT_WORKER_DEVICE", "gpu0"}}),
    "environment: VOLT_WORKER_DEVICE: expected \"cpu\" or \"cuda:N\"");
  CHECK_CONFIG_ERROR(
    parse(worker_toml, {{"VOLT_ROUTER_WORKERS", "127.0.0.1:7001,nowhere"}}),
    "environment: VOLT_ROUTER_WORKERS: element 1: expected \"host:port\"");
  CHECK_CONFIG_ERROR(
    parse(worker_toml, {{"VOLT_DISCOVERY_MODE", "zookeeper"}}),
    "environment: VOLT_DISCOVERY_MODE: unknown mode 'zookeeper'");
  CHECK_CONFIG_ERROR(
    parse(worker_toml, {{"VOLT_ROUTER_ON_MISSING_EXPERT", "ignore"}}),
    "environment: VOLT_ROUTER_ON_MISSING_EXPERT: unknown policy 'ignore' "
    "(expected fail or renormalize");
  CHECK_CONFIG_ERROR(
    parse(worker_toml, {{"VOLT_DISCOVERY_REDIS_URL", "localhost"}}),
    "environment: VOLT_DISCOVERY_REDIS_URL: expected "
    "\"redis://[[user]:password@]host[:port][/db]\"");
  CHECK_CONFIG_ERROR(default_node_config({{"VOLT_NETWORK_PORT", "abc"}}),
                     "environment: VOLT_NETWORK_PORT");
}

CAF_TEST(an empty list override clears the list) {
  auto cfg = parse(worker_toml, {{"VOLT_WORKER_EXPERTS", ""}});
  CAF_REQUIRE(cfg);
  CAF_CHECK(cfg->worker.experts.empty());
}

CAF_TEST(placement comes from the environment as node = ids pairs) {
  auto cfg = parse(worker_toml, {{"VOLT_ROUTER_PLACEMENT",
                                  "127.0.0.1:7001=0,1;127.0.0.1:7002=2"}});
  CAF_REQUIRE(cfg);
  CAF_REQUIRE_EQUAL(cfg->router.placement.size(), 2u);
  CAF_CHECK_EQUAL(cfg->router.placement[0].node, "127.0.0.1:7001");
  CAF_CHECK_EQUAL(cfg->router.placement[0].experts,
                  std::vector<uint32_t>({0, 1}));
  CAF_CHECK_EQUAL(cfg->router.placement[1].experts, std::vector<uint32_t>({2}));
  CHECK_CONFIG_ERROR(parse(worker_toml, {{"VOLT_ROUTER_PLACEMENT", "x"}}),
                     "environment: VOLT_ROUTER_PLACEMENT: expected");
  CHECK_CONFIG_ERROR(parse(worker_toml,
                           {{"VOLT_ROUTER_PLACEMENT", "127.0.0.1:7001=0,x"}}),
                     "VOLT_ROUTER_PLACEMENT");
}

CAF_TEST(unknown keys of known sections are errors with a suggestion) {
  CAF_CHECK_EQUAL(
    message_of(parse(worker_toml, {{"VOLT_NETWORK_PROT", "7801"}})),
    "environment: VOLT_NETWORK_PROT: unknown key 'prot' in [network] (did you "
    "mean VOLT_NETWORK_PORT?)");
  CHECK_CONFIG_ERROR(
    parse(worker_toml, {{"VOLT_WORKER_BANDWIDTH", "1"}}),
    "environment: VOLT_WORKER_BANDWIDTH: unknown key 'bandwidth' in [worker]",
    "VOLT_WORKER_EXPERTS, VOLT_WORKER_DEVICE");
  CHECK_CONFIG_ERROR(parse(worker_toml,
                           {{"VOLT_DISCOVERY_REDISURL", "redis://x"}}),
                     "did you mean VOLT_DISCOVERY_REDIS_URL?");
}

CAF_TEST(variables that are not config keys are ignored) {
  env_map env{{"VOLT_TEST_DATA_DIR", "/somewhere"},
              {"VOLT_LOG_LEVEL", "debug"},
              {"VOLT_NETWORK", "x"}, // no key part
              {"VOLT_NETWROK_PORT", "1"}, // section part is not a section
              {"volt_network_port", "1"}, // lower case is not ours
              {"PATH", "/usr/bin"},
              {"HOME", "/root"}};
  auto cfg = parse(worker_toml, env);
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->network.port, 7801);
}

CAF_TEST(every key has a distinct variable name) {
  std::set<std::string> names;
  for (const auto& key : config_keys())
    CAF_CHECK(names.insert(env_name(key)).second);
  CAF_CHECK_EQUAL(names.count("VOLT_DISCOVERY_REDIS_URL"), 1u);
  CAF_CHECK_EQUAL(names.count("VOLT_NETWORK_PORT"), 1u);
}

CAF_TEST(process environment returns the variables of this process) {
  setenv("VOLT_CONFIG_TEST_PROBE", "a=b", 1);
  auto env = process_environment();
  unsetenv("VOLT_CONFIG_TEST_PROBE");
  CAF_CHECK_EQUAL(env["VOLT_CONFIG_TEST_PROBE"], "a=b");
}
