#define CAF_SUITE config.errors

// Every way a config file can be wrong: each error is invalid_config, one line,
// and names the file and the key at fault.

#include "config/node_config.hpp"

#include "tests/config/config_test_helpers.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// The valid worker file with the line starting with `prefix` replaced by
/// `line`.
std::string worker_with(const std::string& prefix, const std::string& line) {
  auto result = worker_toml;
  auto pos = result.find("\n" + prefix);
  if (pos == std::string::npos)
    return result + line
           + "\n"; // not in the file yet: append (to the last section)
  auto end = result.find('\n', pos + 1);
  return result.replace(pos + 1, end - pos - 1, line);
}

/// A minimal valid file of any role plus `extra` TOML.
std::string standalone_with(const std::string& extra) {
  return "[model]\npath = \"m\"\n" + extra;
}

} // namespace

// -- files
// ------------------------------------------------------------------------------------

CAF_TEST(missing file) {
  auto cfg = load_node_config("missing.toml", {});
  CHECK_CONFIG_ERROR(cfg, "missing.toml: cannot open file");
}

CAF_TEST(directory instead of a file) {
  auto cfg = load_node_config("/tmp", {});
  CHECK_CONFIG_ERROR(cfg, "/tmp: cannot open file");
}

CAF_TEST(malformed toml reports file line and column on one line) {
  auto cfg = parse_node_config("[node]\nid = \"x\"\nrole = = \"worker\"\n",
                               "bad.toml", {});
  CHECK_CONFIG_ERROR(cfg, "bad.toml:3:");
  CAF_CHECK_EQUAL(message_of(cfg).rfind("bad.toml:3:", 0), 0u);
  auto unterminated = parse_node_config("[node]\nid = \"x\n", "bad.toml", {});
  CHECK_CONFIG_ERROR(unterminated, "bad.toml:2:");
  auto duplicate = parse_node_config("[network]\nport = 1\nport = 2\n",
                                     "dup.toml", {});
  CHECK_CONFIG_ERROR(duplicate, "dup.toml:3:");
}

// -- unknown names
// ------------------------------------------------------------------------------

CAF_TEST(unknown key suggests the closest valid key) {
  auto cfg = parse(standalone_with("[network]\nprot = 7700\n"));
  CAF_CHECK_EQUAL(
    message_of(cfg),
    "node.toml: [network] prot: unknown key (did you mean 'port'?)");
  CHECK_CONFIG_ERROR(cfg, "node.toml", "[network] prot");
}

CAF_TEST(unknown key without a close match lists the valid keys) {
  auto cfg = parse(standalone_with("[network]\nbandwidth = 10\n"));
  CHECK_CONFIG_ERROR(cfg, "node.toml: [network] bandwidth: unknown key",
                     "valid keys: host, port");
}

CAF_TEST(key in the wrong section names its section) {
  auto cfg = parse(standalone_with("[worker]\nport = 7700\n"));
  CHECK_CONFIG_ERROR(cfg, "node.toml: [worker] port: unknown key",
                     "did you mean [network] port?");
}

CAF_TEST(unknown section suggests the closest valid section) {
  auto cfg = parse(standalone_with("[netwrok]\nport = 7700\n"));
  CAF_CHECK_EQUAL(
    message_of(cfg),
    "node.toml: [netwrok]: unknown section (did you mean 'network'?)");
  auto other = parse(standalone_with("[scheduler]\npolicy = 4\n"));
  CHECK_CONFIG_ERROR(other, "node.toml: [scheduler]: unknown section",
                     "valid sections: node,");
}

CAF_TEST(nested tables are unknown keys) {
  auto cfg = parse(standalone_with("[network.tls]\ncert = \"x\"\n"));
  CHECK_CONFIG_ERROR(cfg, "node.toml: [network] tls: unknown key");
}

CAF_TEST(keys outside any section) {
  auto cfg = parse("port = 7700\n" + standalone_with(""));
  CHECK_CONFIG_ERROR(cfg, "node.toml: port: keys belong in a section",
                     "did you mean [network] port?");
}

CAF_TEST(a section that is not a table) {
  auto cfg = parse("network = 7700\n" + standalone_with(""));
  CHECK_CONFIG_ERROR(cfg,
                     "node.toml: [network]: expected a table, got an integer");
}

CAF_TEST(the first problem in file order is reported) {
  auto cfg = parse(
    standalone_with("[worker]\ndevise = \"cpu\"\n[metrics]\nprot = 1\n"));
  CHECK_CONFIG_ERROR(cfg, "[worker] devise", "did you mean 'device'?");
}

// -- types
// --------------------------------------------------------------------------------------

CAF_TEST(wrong types name expected and actual type) {
  CAF_CHECK_EQUAL(
    message_of(parse(worker_with("port", "port = \"abc\""))),
    "node.toml: [network] port: expected an integer, got a string");
  CHECK_CONFIG_ERROR(parse(worker_with("port", "port = 7700.5")),
                     "node.toml: [network] port: expected an integer, got a "
                     "floating-point number");
  CHECK_CONFIG_ERROR(
    parse(worker_with("experts", "experts = \"0,1\"")),
    "node.toml: [worker] experts: expected an array of integers, got a string");
  CHECK_CONFIG_ERROR(
    parse(worker_with("experts", "experts = [0, \"1\"]")),
    "node.toml: [worker] experts: expected an array of integers, got a string "
    "at element 1");
  CHECK_CONFIG_ERROR(
    parse(worker_with("role", "role = 3")),
    "node.toml: [node] role: expected a string, got an integer");
  CHECK_CONFIG_ERROR(
    parse(worker_with("device", "device = true")),
    "node.toml: [worker] device: expected a string, got a boolean");
  CHECK_CONFIG_ERROR(parse(worker_with("id", "id = [\"a\"]")),
                     "node.toml: [node] id: expected a string, got an array");
  CHECK_CONFIG_ERROR(
    parse(standalone_with("[router]\nworkers = \"127.0.0.1:7001\"\n")),
    "node.toml: [router] workers: expected an array of strings, got a string");
  CHECK_CONFIG_ERROR(parse(standalone_with("[router]\nworkers = [7001]\n")),
                     "[router] workers: expected an array of strings, got an "
                     "integer at element 0");
  CHECK_CONFIG_ERROR(
    parse(standalone_with("[metrics]\nport = { value = 1 }\n")),
    "node.toml: [metrics] port: expected an integer, got a table");
}

// -- ranges
// -------------------------------------------------------------------------------------

CAF_TEST(network port must be 1 to 65535) {
  CAF_CHECK_EQUAL(
    message_of(parse(worker_with("port", "port = 0"))),
    "node.toml: [network] port: expected an integer in [1, 65535], got 0");
  CHECK_CONFIG_ERROR(
    parse(worker_with("port", "port = 65536")),
    "node.toml: [network] port: expected an integer in [1, 65535], got 65536");
  CHECK_CONFIG_ERROR(parse(worker_with("port", "port = -1")), "[network] port",
                     "got -1");
  CAF_CHECK(parse(worker_with("port", "port = 65535")));
  CAF_CHECK(parse(worker_with("port", "port = 1")));
}

CAF_TEST(metrics port must be 0 to 65535) {
  CHECK_CONFIG_ERROR(
    parse(standalone_with("[metrics]\nport = 70000\n")),
    "node.toml: [metrics] port: expected an integer in [0, 65535], got 70000");
  CHECK_CONFIG_ERROR(parse(standalone_with("[metrics]\nport = -5\n")),
                     "[metrics] port");
  CAF_CHECK(parse(standalone_with("[metrics]\nport = 0\n")));
}

CAF_TEST(metrics port must differ from the network port) {
  CHECK_CONFIG_ERROR(parse(standalone_with("[metrics]\nport = 7700\n")),
                     "node.toml: [metrics] port: 7700 is also [network] port");
}

CAF_TEST(expert ids must fit uint32 and be unique) {
  CAF_CHECK_EQUAL(
    message_of(parse(worker_with("experts", "experts = [0, -1]"))),
    "node.toml: [worker] experts: element 1: expected an integer in "
    "[0, 4294967295], got -1");
  CHECK_CONFIG_ERROR(parse(worker_with("experts", "experts = [4294967296]")),
                     "node.toml: [worker] experts", "got 4294967296");
  CHECK_CONFIG_ERROR(parse(worker_with("experts", "experts = [1, 3, 3]")),
                     "node.toml: [worker] experts: expert 3 is listed twice");
  auto big = parse(worker_with("experts", "experts = [4294967295]"));
  CAF_REQUIRE_EQUAL(message_of(big), "");
  CAF_CHECK_EQUAL(big->worker.experts.front(), 4294967295u);
}

// -- values
// -------------------------------------------------------------------------------------

CAF_TEST(unknown role suggests the closest role) {
  CAF_CHECK_EQUAL(message_of(parse(worker_with("role", "role = \"wroker\""))),
                  "node.toml: [node] role: unknown role 'wroker' (expected "
                  "standalone, router or "
                  "worker; did you mean 'worker'?)");
  CAF_CHECK_EQUAL(message_of(parse(worker_with("role", "role = \"boss\""))),
                  "node.toml: [node] role: unknown role 'boss' (expected "
                  "standalone, router or "
                  "worker)");
}

CAF_TEST(bad node ids and hosts) {
  CHECK_CONFIG_ERROR(parse(worker_with("id", "id = \"a b\"")),
                     "node.toml: [node] id: expected a non-empty id",
                     "got \"a b\"");
  CHECK_CONFIG_ERROR(parse(worker_with("id", "id = \"\"")),
                     "node.toml: [node] id");
  CHECK_CONFIG_ERROR(
    parse(worker_with("host", "host = \"\"")),
    "node.toml: [network] host: expected a host name or IP address");
  CHECK_CONFIG_ERROR(parse(worker_with("host", "host = \"a host\"")),
                     "[network] host");
  CHECK_CONFIG_ERROR(parse(worker_with("host", "host = \"[::1]\"")),
                     "[network] host");
  CAF_CHECK(parse(worker_with("host", "host = \"::1\"")));
  CAF_CHECK(parse(worker_with("host", "host = \"0.0.0.0\"")));
}

CAF_TEST(bad device strings) {
  for (auto bad : {"gpu", "cuda", "cuda:", "cuda:-1", "cuda:x", "CUDA:0", ""})
    CHECK_CONFIG_ERROR(
      parse(worker_with("device", "device = \"" + std::string{bad} + "\"")),
      "node.toml: [worker] device: expected \"cpu\" or \"cuda:N\" with N a "
      "non-negative integer, got \""
        + std::string{bad} + "\"");
  auto cfg = parse(worker_with("device", "device = \"cuda:3\""));
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->worker.device, "cuda:3");
}

CAF_TEST(bad discovery mode) {
  CAF_CHECK_EQUAL(
    message_of(parse(standalone_with("[discovery]\nmode = \"redsi\"\n"))),
    "node.toml: [discovery] mode: unknown mode 'redsi' (expected static or "
    "redis; did you mean 'redis'?)");
  CHECK_CONFIG_ERROR(parse(standalone_with("[discovery]\nmode = \"dns\"\n")),
                     "node.toml: [discovery] mode: unknown mode 'dns'");
  CHECK_CONFIG_ERROR(parse(standalone_with("[discovery]\nmode = \"statc\"\n")),
                     "[discovery] mode", "did you mean 'static'?");
}

CAF_TEST(bad missing expert policy) {
  CAF_CHECK_EQUAL(
    message_of(parse(standalone_with("[router]\non_missing_expert = "
                                     "\"renormalise\"\n"))),
    "node.toml: [router] on_missing_expert: unknown policy 'renormalise' "
    "(expected fail or renormalize; did you mean 'renormalize'?)");
  CHECK_CONFIG_ERROR(
    parse(standalone_with("[router]\non_missing_expert = 1\n")),
    "node.toml: [router] on_missing_expert: expected a string, got an "
    "integer");
  auto cfg = parse(standalone_with("[router]\non_missing_expert = "
                                   "\"renormalize\"\n"));
  CAF_REQUIRE(cfg);
  CAF_CHECK(cfg->router.on_missing_expert
            == missing_expert_policy::renormalize);
  CAF_CHECK(parse(standalone_with(""))->router.on_missing_expert
            == missing_expert_policy::fail);
}

CAF_TEST(bad expert miss mode) {
  CAF_CHECK_EQUAL(
    message_of(parse(standalone_with("[worker]\nexpert_misses = \"hots\"\n"))),
    "node.toml: [worker] expert_misses: unknown mode 'hots' (expected auto, "
    "load or host; did you mean 'host'?)");
  CHECK_CONFIG_ERROR(parse(standalone_with("[worker]\nexpert_misses = true\n")),
                     "node.toml: [worker] expert_misses: expected a string");
  auto cfg = parse(standalone_with("[worker]\nexpert_misses = \"load\"\n"));
  CAF_REQUIRE(cfg);
  CAF_CHECK(cfg->worker.expert_misses == expert_miss_mode::load);
  CAF_CHECK(parse(standalone_with(""))->worker.expert_misses
            == expert_miss_mode::automatic);
}

CAF_TEST(bad redis urls) {
  for (auto bad : {"http://cache:6379", "redis://", "redis://cache:99999",
                   "redis://cache:port", "cache:6379", "redis://cache:6379/x"})
    CHECK_CONFIG_ERROR(
      parse(standalone_with("[discovery]\nredis_url = \"" + std::string{bad}
                            + "\"\n")),
      "node.toml: [discovery] redis_url: expected "
      "\"redis://[[user]:password@]host[:port][/db]\"",
      std::string{"got \""} + bad + "\"");
  // A bad URL with credentials does not show them.
  CHECK_CONFIG_ERROR(
    parse(standalone_with(
      "[discovery]\nredis_url = \"redis://:hunter2@cache:port\"\n")),
    "[discovery] redis_url", "got \"redis://***@cache:port\"");
}

CAF_TEST(redis urls with a database and credentials are accepted) {
  for (auto good : {"redis://127.0.0.1:6379/0", "redis://:secret@cache:6380/2",
                    "redis://volt:secret@cache"})
    CAF_CHECK(parse(standalone_with("[discovery]\nredis_url = \""
                                    + std::string{good} + "\"\n")));
}

CAF_TEST(bad router worker entries) {
  for (auto bad : {"localhost", "host:0", ":7001", "host:70000",
                   "host:", "127.0.0.1:7001:1"})
    CHECK_CONFIG_ERROR(
      parse(standalone_with("[router]\nworkers = [\"127.0.0.1:7000\", \""
                            + std::string{bad} + "\"]\n")),
      "node.toml: [router] workers: element 1: expected \"host:port\"",
      std::string{"got \""} + bad + "\"");
  CHECK_CONFIG_ERROR(
    parse(standalone_with("[router]\nworkers = [\"h:1\", \"h:2\", \"h:1\"]\n")),
    "node.toml: [router] workers: worker \"h:1\" is listed twice");
}

CAF_TEST(control characters stay escaped so messages stay one line) {
  CHECK_CONFIG_ERROR(parse(worker_with("device", "device = \"cuda:\\n0\"")),
                     "got \"cuda:\\n0\"");
}

// -- role requirements
// --------------------------------------------------------------------------

CAF_TEST(every role needs a model path) {
  for (auto role : {"standalone", "router", "worker"}) {
    auto text = "[node]\nrole = \"" + std::string{role} + "\"\n"
                + "[worker]\nexperts = [0]\n[router]\nworkers = [\"h:1\"]\n";
    CHECK_CONFIG_ERROR(parse(text), "node.toml: [model] path: must be set");
    CHECK_CONFIG_ERROR(parse(text + "[model]\npath = \"\"\n"),
                       "node.toml: [model] path");
    CAF_CHECK_EQUAL(message_of(parse(text + "[model]\npath = \"m\"\n")), "");
  }
}

CAF_TEST(a worker without experts hosts what routers spawn) {
  auto cfg = parse(worker_with("experts", "experts = []"));
  CAF_REQUIRE(cfg);
  CAF_CHECK(cfg->worker.experts.empty());
}

CAF_TEST(placement entries are checked) {
  auto router = std::string{"[node]\nrole = \"router\"\n[model]\npath = \"m\"\n"
                            "[router]\n"};
  auto ok
    = parse(router
            + "placement = [{node = \"127.0.0.1:7001\", experts = [0, 1]},"
              " {node = \"127.0.0.1:7002\", experts = [2]}]\n");
  CAF_REQUIRE(ok);
  CAF_CHECK_EQUAL(ok->router.placement.size(), 2u);
  auto tables = parse(router.substr(0, router.size() - 9)
                      + "[[router.placement]]\nnode = \"127.0.0.1:7001\"\n"
                        "experts = [3]\n");
  CAF_REQUIRE(tables);
  CAF_CHECK_EQUAL(tables->router.placement[0].experts,
                  std::vector<uint32_t>({3}));
  CHECK_CONFIG_ERROR(parse(router
                           + "placement = [{node = \"x\", experts = "
                             "[0]}]\n"),
                     "node.toml: [router] placement: element 0: node");
  CHECK_CONFIG_ERROR(parse(router
                           + "placement = [{nodes = \"127.0.0.1:1\", "
                             "experts = [0]}]\n"),
                     "unknown key 'nodes' (did you mean 'node'?)");
  CHECK_CONFIG_ERROR(parse(router
                           + "placement = [{node = \"127.0.0.1:1\", "
                             "experts = []}]\n"),
                     "element 0: experts: empty");
  CHECK_CONFIG_ERROR(parse(router
                           + "placement = [{node = \"127.0.0.1:1\", "
                             "experts = [1, 1]}]\n"),
                     "listed twice");
  CHECK_CONFIG_ERROR(parse(router
                           + "placement = [{node = \"127.0.0.1:1\", "
                             "experts = [-1]}]\n"),
                     "placement");
  CHECK_CONFIG_ERROR(parse(router + "placement = \"127.0.0.1:1\"\n"),
                     "expected an array of tables");
  auto placed = parse(router
                      + "placement = [{node = \"127.0.0.1:1\", "
                        "experts = [9]}]\n");
  CAF_REQUIRE(placed);
  CHECK_CONFIG_ERROR(check_against_model(*placed, 8, "m/config.json"),
                     "node.toml: [router] placement: expert 9 for node "
                     "127.0.0.1:1 is outside the model (8 experts in "
                     "m/config.json)");
}

CAF_TEST(ttl must exceed the heartbeat) {
  CHECK_CONFIG_ERROR(parse(worker_toml
                           + "\n[discovery]\nheartbeat_ms = 500\n"
                             "ttl_ms = 500\n"),
                     "node.toml: [discovery] ttl_ms: 500 must exceed "
                     "heartbeat_ms (500)");
}

CAF_TEST(a static router needs at least one worker) {
  auto router = "[node]\nrole = \"router\"\n[model]\npath = \"m\"\n";
  CHECK_CONFIG_ERROR(parse(router),
                     "node.toml: [router] workers: a router with [discovery] "
                     "mode = \"static\" needs at least one worker");
  CHECK_CONFIG_ERROR(parse(router + std::string{"[router]\nworkers = []\n"}),
                     "node.toml: [router] workers");
  CAF_CHECK_EQUAL(
    message_of(parse(router + std::string{"[discovery]\nmode = \"redis\"\n"})),
    "");
}

CAF_TEST(int8 needs a gpu device) {
  auto with_model_key = worker_toml;
  with_model_key.replace(with_model_key.find("path = "), 0,
                         "quantization = \"int8\"\n");
  CHECK_CONFIG_ERROR(parse(with_model_key),
                     "node.toml: [model] quantization: \"int8\" runs on the "
                     "GPU expert path");
  auto on_gpu = with_model_key;
  on_gpu.replace(on_gpu.find("device = \"cpu\""), 14, "device = \"cuda:0\"");
  CAF_CHECK(parse(on_gpu));
  // A standalone node whose model is on a GPU computes its experts there.
  CAF_CHECK_EQUAL(message_of(parse(standalone_with(
                    "device = \"cuda:0\"\nquantization = \"int8\"\n"))),
                  "");
}

CAF_TEST(the expert cache needs experts on a gpu) {
  auto slots = std::string{"[worker]\ngpu_expert_slots = 16\n"};
  CHECK_CONFIG_ERROR(parse(standalone_with("") + slots),
                     "node.toml: [worker] gpu_expert_slots: the expert cache "
                     "keeps the experts this node computes on a GPU");
  // A worker's experts on a GPU may have a cache; on the CPU not.
  CHECK_CONFIG_ERROR(parse(worker_toml + "gpu_expert_slots = 16\n"),
                     "node.toml: [worker] gpu_expert_slots: the expert cache");
  auto worker = worker_toml;
  worker.replace(worker.find("device = \"cpu\""), 14, "device = \"cuda:0\"");
  auto on_worker = parse(worker + "gpu_expert_slots = 16\n");
  CAF_REQUIRE_EQUAL(message_of(on_worker), "");
  CAF_CHECK_EQUAL(on_worker->worker.gpu_expert_slots, 16u);
  auto cfg = parse(standalone_with("device = \"cuda:0\"\n") + slots);
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->worker.gpu_expert_slots, 16u);
  CHECK_CONFIG_ERROR(parse(standalone_with("device = \"cuda:0\"\n")
                           + "[worker]\ngpu_expert_slots = -1\n"),
                     "node.toml: [worker] gpu_expert_slots");
}

CAF_TEST(float32 activations need a standalone node without an expert cache) {
  auto cfg = parse(standalone_with("device = \"cuda:0\"\n"
                                   "activations = \"float32\"\n"));
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->model.activations, "float32");
  CHECK_CONFIG_ERROR(parse(standalone_with("activations = \"fp32\"\n")),
                     "node.toml: [model] activations: expected \"bf16\" or "
                     "\"float32\", got \"fp32\"");
  CHECK_CONFIG_ERROR(parse(standalone_with("device = \"cuda:0\"\n"
                                           "activations = \"float32\"\n")
                           + "[worker]\ngpu_expert_slots = 16\n"),
                     "node.toml: [model] activations: \"float32\" does not "
                     "work with the expert cache");
  auto router = std::string{"[node]\nid = \"r\"\nrole = \"router\"\n"
                            "[router]\nworkers = [\"127.0.0.1:7801\"]\n"}
                + standalone_with("device = \"cuda:0\"\n"
                                  "activations = \"float32\"\n");
  CHECK_CONFIG_ERROR(parse(router), "node.toml: [model] activations: "
                                    "\"float32\" needs the experts on this "
                                    "node");
}

CAF_TEST(model device) {
  CHECK_CONFIG_ERROR(parse(standalone_with("device = \"gpu0\"\n")),
                     "node.toml: [model] device: expected \"cpu\" or "
                     "\"cuda:N\" with N a non-negative integer, got \"gpu0\"");
  auto cfg = parse(standalone_with("device = \"cuda:1\"\n"));
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->model.device, "cuda:1");
  // Its experts go with the model: another [worker] device is a mistake.
  CHECK_CONFIG_ERROR(
    parse(standalone_with("device = \"cuda:0\"\n[worker]\ndevice = "
                          "\"cuda:1\"\n")),
    "node.toml: [worker] device: cuda:1 differs from [model] device = cuda:0");
  CAF_CHECK_EQUAL(message_of(parse(standalone_with(
                    "device = \"cuda:0\"\n[worker]\ndevice = \"cuda:0\"\n"))),
                  "");
  CHECK_CONFIG_ERROR(
    parse(standalone_with("[kv_cache]\ngpu_memory_percent = 100\n")),
    "node.toml: [kv_cache] gpu_memory_percent");
}
