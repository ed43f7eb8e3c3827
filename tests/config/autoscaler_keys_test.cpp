#define CAF_SUITE config.autoscaler_keys

// The [autoscaler] section: defaults, values from TOML and the environment
// (the boolean key type included), and each bad value's one-line error
// naming the key.

#include "config/node_config.hpp"

#include "config/endpoint.hpp"
#include "tests/config/config_test_helpers.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

std::string with_model(const std::string& text) {
  return "[model]\npath = \"m\"\n" + text;
}

/// The error of one [autoscaler] key set to `value` (TOML text).
caf::expected<node_config> with_key(const std::string& key,
                                    const std::string& value) {
  return parse(with_model("[autoscaler]\n" + key + " = " + value + "\n"));
}

} // namespace

CAF_TEST(defaults match the documented values) {
  node_config cfg;
  const auto& a = cfg.autoscaler;
  CAF_CHECK_EQUAL(a.enabled, false);
  CAF_CHECK_EQUAL(a.interval_ms, 1000u);
  CAF_CHECK_EQUAL(a.queue_depth_threshold, 32u);
  CAF_CHECK_EQUAL(a.p99_threshold_ms, 0u);
  CAF_CHECK_EQUAL(a.window_ms, 30000u);
  CAF_CHECK_EQUAL(a.scale_down_queue_depth, 0u);
  CAF_CHECK_EQUAL(a.scale_down_window_ms, 300000u);
  CAF_CHECK_EQUAL(a.cooldown_ms, 120000u);
  CAF_CHECK_EQUAL(a.hot_experts, 2u);
  CAF_CHECK_EQUAL(a.max_replicas_per_expert, 1u);
  CAF_CHECK(a.spare_nodes.empty());
  CAF_CHECK_EQUAL(a.webhook_url, "");
  CAF_CHECK_EQUAL(a.webhook_timeout_ms, 2000u);
  CAF_CHECK_EQUAL(a.webhook_retries, 3u);
  CAF_CHECK_EQUAL(a.webhook_backoff_ms, 500u);
}

CAF_TEST(values from the file) {
  auto cfg = parse(with_model(R"([autoscaler]
enabled = true
interval_ms = 50
queue_depth_threshold = 4
p99_threshold_ms = 2500
window_ms = 300
scale_down_queue_depth = 1
scale_down_window_ms = 900
cooldown_ms = 0
hot_experts = 3
max_replicas_per_expert = 2
spare_nodes = ["127.0.0.1:7900", "[::1]:7901"]
spawn_timeout_ms = 5000
webhook_url = "https://ops.example.com:8443/hooks/volt?token=x"
webhook_timeout_ms = 250
webhook_retries = 0
webhook_backoff_ms = 0
)"));
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  const auto& a = cfg->autoscaler;
  CAF_CHECK_EQUAL(a.enabled, true);
  CAF_CHECK_EQUAL(a.interval_ms, 50u);
  CAF_CHECK_EQUAL(a.queue_depth_threshold, 4u);
  CAF_CHECK_EQUAL(a.p99_threshold_ms, 2500u);
  CAF_CHECK_EQUAL(a.window_ms, 300u);
  CAF_CHECK_EQUAL(a.scale_down_queue_depth, 1u);
  CAF_CHECK_EQUAL(a.scale_down_window_ms, 900u);
  CAF_CHECK_EQUAL(a.cooldown_ms, 0u);
  CAF_CHECK_EQUAL(a.hot_experts, 3u);
  CAF_CHECK_EQUAL(a.max_replicas_per_expert, 2u);
  CAF_CHECK_EQUAL(a.spare_nodes.size(), 2u);
  CAF_CHECK_EQUAL(a.spawn_timeout_ms, 5000u);
  CAF_CHECK_EQUAL(a.webhook_timeout_ms, 250u);
  CAF_CHECK_EQUAL(a.webhook_retries, 0u);
  auto url = parse_http_url(a.webhook_url);
  CAF_REQUIRE(url);
  CAF_CHECK_EQUAL(url->scheme, "https");
  CAF_CHECK_EQUAL(url->server.host, "ops.example.com");
  CAF_CHECK_EQUAL(url->server.port, 8443);
  CAF_CHECK_EQUAL(url->path, "/hooks/volt?token=x");
  // Logs show the origin only: the path may carry a secret.
  CAF_CHECK_EQUAL(render_http_origin(*url), "https://ops.example.com:8443");
}

CAF_TEST(values from the environment) {
  auto cfg = parse(with_model(""),
                   {{"VOLT_AUTOSCALER_ENABLED", "true"},
                    {"VOLT_AUTOSCALER_SPARE_NODES", "127.0.0.1:7900, h:7901"},
                    {"VOLT_AUTOSCALER_WEBHOOK_URL", "http://10.0.0.9/x"}});
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->autoscaler.enabled, true);
  CAF_CHECK_EQUAL(cfg->autoscaler.spare_nodes.size(), 2u);
  auto url = parse_http_url(cfg->autoscaler.webhook_url);
  CAF_REQUIRE(url);
  CAF_CHECK_EQUAL(url->server.port, 80);
  for (auto [text, expected] : {std::pair<const char*, bool>{"1", true},
                                {"0", false},
                                {"false", false}}) {
    auto x = parse(with_model(""), {{"VOLT_AUTOSCALER_ENABLED", text}});
    CAF_REQUIRE_EQUAL(message_of(x), "");
    CAF_CHECK_EQUAL(x->autoscaler.enabled, expected);
  }
  CHECK_CONFIG_ERROR(parse(with_model(""),
                           {{"VOLT_AUTOSCALER_ENABLED", "yes"}}),
                     "environment: VOLT_AUTOSCALER_ENABLED: expected true or "
                     "false (or 1 or 0), got \"yes\"");
}

CAF_TEST(bad values name the key) {
  CHECK_CONFIG_ERROR(with_key("enabled", "1"),
                     "node.toml: [autoscaler] enabled: expected a boolean, got "
                     "an integer");
  CHECK_CONFIG_ERROR(with_key("enabled", "\"true\""),
                     "[autoscaler] enabled: expected a boolean, got a string");
  CHECK_CONFIG_ERROR(with_key("queue_depth_threshold", "0"),
                     "[autoscaler] queue_depth_threshold: expected an integer "
                     "in [1, 1048576], got 0");
  CHECK_CONFIG_ERROR(with_key("interval_ms", "5"),
                     "[autoscaler] interval_ms: expected an integer in [10, "
                     "600000], got 5");
  CHECK_CONFIG_ERROR(with_key("max_replicas_per_expert", "0"),
                     "[autoscaler] max_replicas_per_expert: expected an "
                     "integer in [1, 64], got 0");
  CHECK_CONFIG_ERROR(with_key("hot_experts", "-1"), "[autoscaler] hot_experts");
  CHECK_CONFIG_ERROR(with_key("webhook_retries", "101"),
                     "[autoscaler] webhook_retries: expected an integer in "
                     "[0, 100], got 101");
  CHECK_CONFIG_ERROR(with_key("webhook_timeout_ms", "0"),
                     "[autoscaler] webhook_timeout_ms");
  CHECK_CONFIG_ERROR(with_key("spare_nodes", "[\"localhost\"]"),
                     "[autoscaler] spare_nodes: element 0: expected "
                     "\"host:port\" with port in [1, 65535], got "
                     "\"localhost\"");
  CHECK_CONFIG_ERROR(with_key("spare_nodes", "[\"h:1\", \"h:1\"]"),
                     "[autoscaler] spare_nodes: node \"h:1\" is listed twice");
  CHECK_CONFIG_ERROR(with_key("spare_nodes", "\"h:1\""),
                     "[autoscaler] spare_nodes: expected an array of strings");
  for (auto url : {"ftp://h/x", "http://", "http://user:pw@h/x", "http://h:0/",
                   "http://h/a b", "hooks.example.com/x"})
    CHECK_CONFIG_ERROR(with_key("webhook_url", "\"" + std::string{url} + "\""),
                       "node.toml: [autoscaler] webhook_url: expected \"\" (no "
                       "webhook) or \"http[s]://host[:port][/path]\"");
  CHECK_CONFIG_ERROR(with_key("wndow_ms", "10"),
                     "[autoscaler] wndow_ms: unknown key (did you mean "
                     "'window_ms'?)");
}

CAF_TEST(keys that bound each other) {
  CHECK_CONFIG_ERROR(parse(with_model("[autoscaler]\ninterval_ms = 500\n"
                                      "window_ms = 100\n")),
                     "node.toml: [autoscaler] window_ms: 100 ms is shorter "
                     "than interval_ms (500 ms)");
  CHECK_CONFIG_ERROR(parse(with_model("[autoscaler]\ninterval_ms = 500\n"
                                      "window_ms = 500\n"
                                      "scale_down_window_ms = 100\n")),
                     "[autoscaler] scale_down_window_ms: 100 ms is shorter "
                     "than interval_ms (500 ms)");
  CHECK_CONFIG_ERROR(
    parse(with_model("[autoscaler]\nqueue_depth_threshold = 4\n"
                     "scale_down_queue_depth = 4\n")),
    "node.toml: [autoscaler] scale_down_queue_depth: 4 must "
    "be below queue_depth_threshold (4)");
  CHECK_CONFIG_ERROR(parse(with_model(""),
                           {{"VOLT_AUTOSCALER_QUEUE_DEPTH_THRESHOLD", "1"},
                            {"VOLT_AUTOSCALER_SCALE_DOWN_QUEUE_DEPTH", "3"}}),
                     "[autoscaler] scale_down_queue_depth: 3 must be below "
                     "queue_depth_threshold (1)");
}
