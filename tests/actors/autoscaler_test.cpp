#define CAF_SUITE actors.autoscaler

// The autoscaler on a real cluster over loopback: a router, a worker with
// every expert and a bare spare worker, with a real webhook. Many concurrent
// clients fill the router's queue past queue_depth_threshold: scale_up is
// POSTed with its fields, replicas of the hot experts are spawned on the
// spare and take load; once the load stops, scale_down is POSTed and the
// replicas are drained and retired while a client keeps asking. Every answer
// equals the standalone one.

#include "tests/actors/reference_load.hpp"
#include "tests/actors/webhook_receiver.hpp"
#include "tests/cluster.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// Token rows the spare node's experts computed.
double spare_rows(uint16_t metrics_port) {
  return metric_sum(metrics_text(metrics_port),
                    "voltinfer_expert_rows_total{node=\"spare\"");
}

/// Waits until the spare node has computed rows.
bool wait_spare_rows(uint16_t metrics_port, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (spare_rows(metrics_port) <= 0) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  return true;
}

std::string string_of(const json::value& doc, const char* key) {
  auto x = json::find(doc, key);
  return x != nullptr && x->is_string() ? x->get<std::string>() : std::string{};
}

std::vector<int64_t> ints_at(const json::value& doc, const char* key) {
  std::vector<int64_t> out;
  auto x = json::find(doc, key);
  if (x != nullptr && x->is_array())
    for (const auto& v : *x)
      out.push_back(v.get<int64_t>());
  return out;
}

} // namespace

CAF_TEST(load spawns replicas on a spare node and low load retires them) {
  temp_dir dir;
  webhook_receiver hook;
  auto w = free_port(), spare = free_port(), spare_metrics = free_port();
  auto r = free_port(), r_metrics = free_port(), r_http = free_port();
  auto spare_name = "127.0.0.1:" + std::to_string(spare);
  node_process worker{
    write_node_toml(dir, {"w", "worker", w, 0,
                          "[worker]\nexperts = [0, 1, 2, 3, 4, 5, 6, 7]\n"})};
  node_process spare_node{
    write_node_toml(dir, {"spare", "worker", spare, spare_metrics, ""})};
  // Two sequences per step: twelve clients keep about ten requests queued.
  auto router_extra
    = "[router]\nworkers = [\"127.0.0.1:" + std::to_string(w)
      + "\"]\n[engine]\nmax_batch = 2\n[http]\nport = " + std::to_string(r_http)
      + "\n[autoscaler]\nenabled = true\ninterval_ms = 50\n"
        "queue_depth_threshold = 3\nwindow_ms = 300\n"
        "scale_down_window_ms = 1000\ncooldown_ms = 1500\n"
        "hot_experts = 3\nspare_nodes = [\""
      + spare_name + "\"]\nwebhook_url = \"" + hook.url() + "\"\n";
  node_process router{
    write_node_toml(dir, {"router", "router", r, r_metrics, router_extra})};
  auto ref = make_reference(4, 16);
  for (const auto& tokens : ref.tokens)
    CAF_REQUIRE_EQUAL(tokens.size(), 16u);
  CAF_REQUIRE(worker.wait_ready());
  CAF_REQUIRE(spare_node.wait_ready());
  CAF_REQUIRE(router.wait_ready());
  CAF_CHECK(hook.posts().empty());

  // Overload: scale_up names the hot experts and spawns them on the spare.
  reference_load heavy{r_http, ref, 12};
  CAF_REQUIRE(hook.wait_for("scale_up", 1, std::chrono::seconds{60}));
  auto up = hook.events("scale_up").front();
  CAF_MESSAGE("scale_up event: " << json::dump(up));
  auto first_post = hook.posts().front();
  CAF_CHECK_EQUAL(first_post.path, "/hooks/volt");
  CAF_CHECK_EQUAL(first_post.content_type, "application/json");
  CAF_CHECK_EQUAL(string_of(up, "node"), "router");
  CAF_CHECK_NOT_EQUAL(string_of(up, "reason").find("queue depth"),
                      std::string::npos);
  CAF_CHECK_GREATER(up["queue_depth"].get<int64_t>(), 3);
  CAF_CHECK(up["p99_seconds"].is_number() || up["p99_seconds"].is_null());
  auto time = string_of(up, "time");
  CAF_CHECK(time.size() == 24 && time.back() == 'Z' && time[10] == 'T');
  auto hot = ints_at(up, "hot_experts");
  CAF_CHECK_EQUAL(hot.size(), 3u);
  CAF_CHECK_EQUAL(up["rows_per_second"].size(), 3u);
  auto sorted_hot = hot;
  std::sort(sorted_hot.begin(), sorted_hot.end());
  // The worker's load as the router sends it rows.
  auto worker_name = "127.0.0.1:" + std::to_string(w);
  CAF_REQUIRE_EQUAL(up["nodes"].size(), 1u);
  CAF_CHECK_EQUAL(string_of(up["nodes"][0], "node"), worker_name);
  CAF_CHECK_GREATER(up["nodes"][0]["rows_per_second"].get<double>(), 0.0);
  CAF_REQUIRE_EQUAL(up["replicas"].size(), 1u);
  CAF_CHECK_EQUAL(string_of(up["replicas"][0], "node"), spare_name);
  CAF_CHECK_EQUAL(ints_at(up["replicas"][0], "experts"), sorted_hot);
  // The replicas join the router's hosts and take rows while load lasts.
  CAF_REQUIRE(router.wait_log("expert host " + spare_name + " joined",
                              std::chrono::seconds{30}));
  CAF_REQUIRE(wait_spare_rows(spare_metrics, std::chrono::seconds{60}));
  heavy.stop();
  CAF_CHECK_GREATER(heavy.ok(), 12);
  CAF_CHECK_EQUAL(heavy.bad(), 0);
  if (heavy.bad() != 0)
    CAF_MESSAGE("last problem: " << heavy.last_problem());

  // Low load, one client still asking: each scale_up is answered by a
  // scale_down, the first of which drains and retires the replicas.
  reference_load light{r_http, ref, 1};
  CAF_REQUIRE(hook.wait_for("scale_down", 1, std::chrono::seconds{60}));
  CAF_REQUIRE(
    router.wait_log("retired replicas of experts", std::chrono::seconds{30}));
  auto down = hook.events("scale_down").front();
  CAF_MESSAGE("scale_down event: " << json::dump(down));
  CAF_CHECK_EQUAL(down["queue_depth"].get<int64_t>(), 0);
  CAF_CHECK_NOT_EQUAL(string_of(down, "reason").find("load low"),
                      std::string::npos);
  CAF_REQUIRE_EQUAL(down["replicas"].size(), 1u);
  CAF_CHECK_EQUAL(string_of(down["replicas"][0], "node"), spare_name);
  // More scale_ups (overload outlasting a cooldown, no spare left) each get
  // their scale_down too.
  auto ups = hook.events("scale_up").size();
  CAF_CHECK(hook.wait_for("scale_down", ups, std::chrono::seconds{60}));
  // The retired replicas take no more rows.
  auto rows_after_retire = spare_rows(spare_metrics);
  auto served = light.ok();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{60};
  while (light.ok() < served + 3 && light.bad() == 0
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  light.stop();
  CAF_CHECK_GREATER(light.ok(), 0);
  CAF_CHECK_EQUAL(light.bad(), 0);
  if (light.bad() != 0)
    CAF_MESSAGE("last problem: " << light.last_problem());
  CAF_CHECK_EQUAL(spare_rows(spare_metrics), rows_after_retire);

  auto text = metrics_text(r_metrics);
  auto count = [&](const std::string& series) {
    return metric_sum(text, series);
  };
  CAF_CHECK_EQUAL(count("voltinfer_autoscaler_actions_total{node=\"router\","
                        "action=\"scale_up\"}"),
                  static_cast<double>(ups));
  CAF_CHECK_EQUAL(count("voltinfer_autoscaler_actions_total{node=\"router\","
                        "action=\"scale_down\"}"),
                  static_cast<double>(ups));
  CAF_CHECK_EQUAL(count("voltinfer_autoscaler_replicas{node=\"router\"}"), 0.0);
  CAF_CHECK_EQUAL(count("voltinfer_live_workers{node=\"router\"}"), 1.0);
  CAF_CHECK_GREATER_OR_EQUAL(
    count("voltinfer_autoscaler_webhook_posts_total{node=\"router\","
          "outcome=\"ok\"}"),
    2.0 * static_cast<double>(ups));
  const auto& log = router.log();
  auto failed = count("voltinfer_requests_total{node=\"router\","
                      "outcome=\"error\"}");
  CAF_CHECK_EQUAL(failed, 0.0);
  // The clients saw none of these: the router's log says what they were.
  if (failed != 0)
    CAF_MESSAGE("router log:\n" << log);
  CAF_CHECK_NOT_EQUAL(log.find("autoscaler: scale_up: overloaded for "),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(log.find("retiring expert host " + spare_name),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(log.find("expert host " + spare_name + " retired"),
                      std::string::npos);
  CAF_CHECK_EQUAL(count_lines(log, "expert host " + spare_name + " is down"),
                  0u);
  CAF_CHECK_EQUAL(router.stop(), 0);
  CAF_CHECK_EQUAL(spare_node.stop(), 0);
  CAF_CHECK_EQUAL(worker.stop(), 0);
}
