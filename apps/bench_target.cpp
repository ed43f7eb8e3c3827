#include "apps/bench_target.hpp"

#include <cstdio>

#include "apps/metrics_scrape.hpp"
#include "apps/remote_client.hpp"
#include "model/json.hpp"

namespace volt {

caf::expected<std::vector<generate_result>>
bench_target::run(caf::actor_system& sys,
                  const std::vector<generate_request>& reqs) const {
  return generate_all_on(sys, engine, name, reqs,
                         std::chrono::steady_clock::now() + wait);
}

caf::expected<counter_reading> counter_reading::take(const bench_target& t) {
  counter_reading r;
  if (!t.metrics)
    return r;
  auto text = scrape_metrics(*t.metrics);
  if (!text)
    return std::move(text.error());
  r.before_ = std::move(*text);
  r.at_ = t.metrics;
  return r;
}

caf::expected<std::optional<network_cost>>
counter_reading::cost(const char* phase, int64_t layers) const {
  if (!at_)
    return std::optional<network_cost>{};
  auto after = scrape_metrics(*at_);
  if (!after)
    return std::move(after.error());
  auto grown = [&](const char* name, const std::string& label = "") {
    return metric_sum(*after, name, label) - metric_sum(before_, name, label);
  };
  auto with_phase = std::string{"phase=\""} + phase + "\"";
  network_cost c;
  double bytes = grown("voltinfer_peer_bytes_sent_total")
                 + grown("voltinfer_peer_bytes_received_total");
  double rows = grown("voltinfer_step_rows_total");
  double seconds = grown("voltinfer_step_seconds_total", with_phase);
  if (rows > 0 && layers > 0)
    c.wire_bytes_per_token_layer = bytes
                                   / (rows * static_cast<double>(layers));
  if (seconds > 0)
    c.expert_wait_share
      = grown("voltinfer_expert_wait_seconds_total", with_phase) / seconds;
  return std::optional<network_cost>{c};
}

void add_network(json::value& row, const std::optional<network_cost>& cost) {
  if (!cost)
    return;
  row["wire_bytes_per_token_layer"]
    = json::rounded(cost->wire_bytes_per_token_layer, 1);
  row["expert_wait_share"] = json::rounded(cost->expert_wait_share, 4);
}

std::string network_text(const std::optional<network_cost>& cost) {
  if (!cost)
    return {};
  char buf[96];
  std::snprintf(buf, sizeof(buf),
                ", %.0f B/token/layer on the wire, %.1f %% waiting for "
                "expert hosts",
                cost->wire_bytes_per_token_layer,
                cost->expert_wait_share * 100);
  return buf;
}

} // namespace volt
