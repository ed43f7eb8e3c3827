#include "actors/expert.hpp"

#include <atomic>

#include "actors/unexpected_messages.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "base/stop_request.hpp"
#include "model/forward.hpp"
#include "model/mapping_guard.hpp"

namespace volt {

caf::error check_expert_batch(const hosted_experts& hosted,
                              const expert_batch& batch) {
  const auto& cfg = hosted.config();
  auto fail = [](std::string why) {
    return make_volt_error(volt_errc::invalid_request,
                           "expert batch: " + std::move(why));
  };
  if (batch.layer >= cfg.num_hidden_layers)
    return fail("layer " + std::to_string(batch.layer)
                + " is outside the model ("
                + std::to_string(cfg.num_hidden_layers) + " layers)");
  if (batch.expert_ids.size() != batch.row_counts.size())
    return fail(std::to_string(batch.expert_ids.size()) + " expert ids but "
                + std::to_string(batch.row_counts.size()) + " row counts");
  uint64_t rows = 0;
  for (auto c : batch.row_counts)
    rows += c;
  if (auto err = check_wire_tensor(
        batch.rows, dtype::f32, {static_cast<int64_t>(rows), cfg.hidden_size},
        "expert batch: rows"))
    return err;
  if (batch.stage_next.size() > static_cast<size_t>(cfg.num_local_experts))
    return fail("stage_next: " + std::to_string(batch.stage_next.size())
                + " experts (the model has "
                + std::to_string(cfg.num_local_experts) + ")");
  for (auto id : batch.stage_next)
    if (id >= cfg.num_local_experts)
      return fail("stage_next: expert " + std::to_string(id)
                  + " is outside the model ("
                  + std::to_string(cfg.num_local_experts) + " experts)");
  for (auto id : batch.expert_ids)
    if (hosted.index_of(id) < 0)
      return make_volt_error(volt_errc::missing_expert,
                             "expert batch: expert " + std::to_string(id)
                               + " is not hosted by this actor");
  return caf::none;
}

expert_hello hello_of(const hosted_experts& hosted) {
  return {hosted.ids(), hosted.checkpoint_fingerprint()};
}

expert_actor::behavior_type
expert(expert_actor::pointer self,
       std::shared_ptr<const expert_weights> weights) {
  return metered_expert(self, std::move(weights), nullptr);
}

expert_actor::behavior_type
metered_expert(expert_actor::pointer self,
               std::shared_ptr<const expert_weights> weights,
               std::shared_ptr<node_metrics> metrics) {
  drop_unexpected_messages(self);
  return {
    [weights, metrics](const expert_batch& batch) -> caf::result<wire_tensor> {
      if (auto err = check_expert_batch(weights->hosting(), batch))
        return err;
      // The weights may be the mapped files themselves: one truncated or
      // rewritten on disk stops this node rather than crash it or change
      // its answers (the router retries the rows on a replica).
      if (auto err = check_mapped_files()) {
        static std::atomic<bool> reported{false};
        if (!reported.exchange(true))
          VOLT_ERROR("expert", describe(err));
        request_stop(exit_checkpoint_changed);
        return err;
      }
      if (metrics)
        for (size_t i = 0; i < batch.expert_ids.size(); ++i)
          metrics->expert_batch(batch.layer, batch.expert_ids[i],
                                batch.row_counts[i]);
      // The rows are read where they arrived and the answer is written
      // into its message: no copy of either.
      auto out = make_f32(batch.rows.shape);
      if (auto err = run_experts(*weights, batch.layer, batch.expert_ids,
                                 batch.row_counts, f32_data(batch.rows),
                                 f32_data(out)))
        return err;
      return out;
    },
    [weights](hosted_atom) { return hello_of(weights->hosting()); },
  };
}

} // namespace volt
