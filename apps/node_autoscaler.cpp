#include "apps/node_autoscaler.hpp"

#include "actors/autoscaler.hpp"
#include "base/log.hpp"
#include "http/webhook.hpp"

namespace volt {

void node_autoscaler::stop() {
  if (scaler)
    caf::anon_send_exit(scaler, caf::exit_reason::user_shutdown);
  if (webhook)
    caf::anon_send_exit(webhook, caf::exit_reason::user_shutdown);
}

node_autoscaler start_autoscaler(caf::actor_system& sys, const node_config& cfg,
                                 const engine_actor& engine,
                                 std::shared_ptr<node_metrics> metrics,
                                 bool replicate,
                                 const std::string& checkpoint) {
  node_autoscaler result;
  const auto& a = cfg.autoscaler;
  if (!a.enabled)
    return result;
  using ms = std::chrono::milliseconds;
  if (!a.webhook_url.empty()) {
    http::webhook_options hook;
    hook.url = *parse_http_url(a.webhook_url); // validated with the config
    hook.timeout = ms{a.webhook_timeout_ms};
    hook.retries = a.webhook_retries;
    hook.backoff = ms{a.webhook_backoff_ms};
    hook.metrics = metrics;
    result.webhook = http::spawn_webhook(sys, std::move(hook));
  }
  autoscaler_options opts;
  auto& t = opts.thresholds;
  t.queue_depth = a.queue_depth_threshold;
  t.p99_seconds = a.p99_threshold_ms / 1000.0;
  t.low_queue_depth = a.scale_down_queue_depth;
  t.window = ms{a.window_ms};
  t.scale_down_window = ms{a.scale_down_window_ms};
  t.cooldown = ms{a.cooldown_ms};
  t.hot_experts = a.hot_experts;
  opts.interval = ms{a.interval_ms};
  opts.spawn_timeout = ms{a.spawn_timeout_ms};
  opts.max_replicas_per_expert = a.max_replicas_per_expert;
  opts.node = cfg.node.id;
  opts.checkpoint = checkpoint;
  opts.metrics = std::move(metrics);
  if (replicate) {
    for (const auto& node : a.spare_nodes)
      opts.spare_nodes.push_back(*parse_endpoint(node)); // validated
  } else if (!a.spare_nodes.empty()) {
    VOLT_WARN("autoscaler", cfg.source
                              << ": [autoscaler] spare_nodes: ignored on a "
                                 "standalone node, which computes every "
                                 "expert itself (replicas need a router)");
  }
  result.scaler = sys.spawn(autoscaler, engine, result.webhook,
                            std::move(opts));
  return result;
}

} // namespace volt
