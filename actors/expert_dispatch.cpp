#include "actors/expert_dispatch.hpp"

#include <algorithm>
#include <string>

#include "base/error.hpp"
#include "base/log.hpp"

namespace volt {

namespace {

/// Tries per expert batch before the step fails: a batch is re-sent when its
/// host dies or does not answer, to whichever replica is least loaded.
constexpr int max_dispatch_attempts = 3;

} // namespace

std::vector<uint32_t> hosted_hint(const std::vector<uint32_t>& hint,
                                  const std::vector<uint32_t>& hosted) {
  std::vector<uint32_t> out;
  for (auto id : hint)
    if (std::binary_search(hosted.begin(), hosted.end(), id))
      out.push_back(id);
  return out;
}

caf::error missing_experts_error(const std::vector<uint32_t>& missing,
                                 const std::string& context) {
  return make_volt_error(volt_errc::missing_expert,
                         "no live host for experts "
                           + expert_pool::render(missing) + context);
}

expert_dispatch::expert_dispatch(engine_actor::pointer self, expert_pool& pool,
                                 int64_t hidden,
                                 std::chrono::milliseconds timeout,
                                 std::shared_ptr<node_metrics> metrics)
  : self_(self), pool_(&pool), hidden_(hidden), timeout_(timeout),
    metrics_(std::move(metrics)) {
}

void expert_dispatch::start(expert_rows work, done_handler done) {
  layer_ = std::make_unique<layer>();
  auto& l = *layer_;
  l.done = std::move(done);
  const auto entries = work.expert_ids.size();
  l.first_row.resize(entries);
  int64_t offset = 0;
  for (size_t i = 0; i < entries; ++i) {
    l.first_row[i] = offset;
    offset += work.row_counts[i];
  }
  l.outputs.assign(static_cast<size_t>(offset * hidden_), 0.0f);
  l.work = std::move(work);
  std::vector<size_t> all(entries);
  for (size_t i = 0; i < entries; ++i)
    all[i] = i;
  send(std::move(all), 0, {});
}

void expert_dispatch::cancel() {
  if (!layer_)
    return;
  for (auto& [id, part] : layer_->parts)
    if (pool_->hosts().count(part.host) > 0)
      pool_->host(part.host).inflight_rows -= part.rows;
  layer_.reset();
}

void expert_dispatch::finish(caf::expected<std::vector<float>> result) {
  auto done = std::move(layer_->done);
  cancel();
  done(std::move(result));
}

std::string expert_dispatch::host_name(uint64_t host) const {
  return pool_->hosts().count(host) > 0 ? pool_->host(host).name
                                        : std::string{"gone"};
}

bool expert_dispatch::current(uint64_t part_id) const {
  return layer_ && layer_->parts.count(part_id) > 0;
}

dispatch_part expert_dispatch::take(uint64_t part_id) {
  auto& parts = layer_->parts;
  auto i = parts.find(part_id);
  auto part = std::move(i->second);
  parts.erase(i);
  if (pool_->hosts().count(part.host) > 0)
    pool_->host(part.host).inflight_rows -= part.rows;
  return part;
}

void expert_dispatch::retry(dispatch_part part, const caf::error& cause) {
  if (part.attempt + 1 >= max_dispatch_attempts)
    return finish(cause);
  if (metrics_)
    metrics_->failover();
  VOLT_INFO("engine", "re-sending " << part.rows << " rows of layer "
                                    << layer_->work.layer
                                    << " to replicas (attempt "
                                    << part.attempt + 2 << ")");
  part.failed_hosts.push_back(part.host);
  send(std::move(part.entries), part.attempt + 1,
       std::move(part.failed_hosts));
}

void expert_dispatch::on_result(uint64_t part_id, const wire_tensor& out) {
  auto name = host_name(layer_->parts.at(part_id).host);
  auto part = take(part_id);
  if (auto err = check_wire_tensor(out, dtype::f32, {part.rows, hidden_},
                                   "expert output from " + name))
    return finish(err);
  if (metrics_)
    metrics_->bytes_received(name, out.bytes.size());
  auto& l = *layer_;
  const auto* values = f32_data(out);
  int64_t src = 0;
  for (auto entry : part.entries) {
    auto count = static_cast<int64_t>(l.work.row_counts[entry]);
    std::copy_n(values + src * hidden_, count * hidden_,
                l.outputs.data() + l.first_row[entry] * hidden_);
    src += count;
  }
  if (l.parts.empty())
    finish(std::move(l.outputs));
}

void expert_dispatch::send(std::vector<size_t> entries, int attempt,
                           std::vector<uint64_t> avoid) {
  auto& l = *layer_;
  std::map<uint64_t, std::vector<size_t>> by_host;
  std::vector<uint32_t> missing;
  for (auto entry : entries) {
    auto host = pool_->pick(l.work.expert_ids[entry], avoid);
    if (!host)
      missing.push_back(l.work.expert_ids[entry]);
    else
      by_host[*host].push_back(entry);
  }
  if (!missing.empty())
    return finish(missing_experts_error(missing, " (their hosts failed and no "
                                                 "replica is left)"));
  auto now = std::chrono::steady_clock::now();
  for (auto& [host_id, host_entries] : by_host) {
    auto& host = pool_->host(host_id);
    expert_batch batch;
    batch.layer = static_cast<uint32_t>(l.work.layer);
    int64_t rows = 0;
    for (auto entry : host_entries) {
      batch.expert_ids.push_back(l.work.expert_ids[entry]);
      batch.row_counts.push_back(l.work.row_counts[entry]);
      rows += l.work.row_counts[entry];
    }
    // Gathered straight into the message's payload.
    batch.rows = make_f32({rows, hidden_});
    auto* gathered = f32_data(batch.rows);
    int64_t dst = 0;
    for (auto entry : host_entries) {
      auto count = static_cast<int64_t>(l.work.row_counts[entry]);
      std::copy_n(l.work.rows.data() + l.first_row[entry] * hidden_,
                  count * hidden_, gathered + dst * hidden_);
      dst += count;
    }
    batch.stage_next = hosted_hint(l.work.stage_next, host.experts);
    if (metrics_)
      metrics_->bytes_sent(host.name, batch.rows.bytes.size());
    auto part_id = next_part_++;
    l.parts.emplace(part_id,
                    dispatch_part{host_id, host_entries, rows, attempt, avoid,
                                  now});
    host.inflight_rows += rows;
    pool_->picked(host_id);
    pool_->sent(host_id, batch.expert_ids, batch.row_counts, rows, now);
    // A reply counts only while its part is still outstanding: after a
    // failover, the failed host's late answer (or error) is ignored. No
    // timeout here: the engine's timer calls expire_overdue.
    self_->request(host.handle, caf::infinite, std::move(batch))
      .then(
        [this, part_id](const wire_tensor& out) {
          if (current(part_id))
            on_result(part_id, out);
        },
        [this, part_id](caf::error& err) {
          if (!current(part_id))
            return;
          auto part = take(part_id);
          VOLT_WARN("engine", "expert batch failed: " << describe(err));
          if (err == volt_errc::invalid_request)
            return finish(err);
          retry(std::move(part), err);
        });
  }
}

std::map<uint32_t, int64_t> expert_dispatch::rows_in_flight() const {
  std::map<uint32_t, int64_t> rows;
  if (!layer_)
    return rows;
  for (const auto& [part_id, part] : layer_->parts)
    for (auto entry : part.entries)
      rows[layer_->work.expert_ids[entry]] += layer_->work.row_counts[entry];
  return rows;
}

void expert_dispatch::expire_overdue() {
  if (!layer_)
    return;
  const auto ms = std::to_string(timeout_.count());
  auto now = std::chrono::steady_clock::now();
  std::vector<uint64_t> overdue;
  for (auto& [part_id, part] : layer_->parts)
    if (now - part.sent >= timeout_)
      overdue.push_back(part_id);
  for (auto part_id : overdue) {
    if (!current(part_id))
      return; // an earlier retry finished the layer
    auto part = take(part_id);
    auto err = caf::make_error(caf::sec::request_timeout,
                               "expert host " + host_name(part.host)
                                 + " did not answer within " + ms + " ms");
    VOLT_WARN("engine", "expert batch failed: " << describe(err));
    retry(std::move(part), err);
  }
}

void expert_dispatch::host_down(uint64_t host, const std::string& name) {
  if (!layer_)
    return;
  std::vector<uint64_t> orphaned;
  for (auto& [part_id, part] : layer_->parts)
    if (part.host == host)
      orphaned.push_back(part_id);
  for (auto part_id : orphaned) {
    if (!current(part_id))
      return; // an earlier retry finished the layer
    retry(take(part_id), make_volt_error(volt_errc::missing_expert,
                                         "expert host " + name + " is down"));
  }
}

} // namespace volt
