#include "actors/kv_page_manager.hpp"

#include <algorithm>
#include <set>
#include <string>

#include "base/error.hpp"

namespace volt {

namespace {

caf::error unknown_sequence(const char* what, uint64_t seq) {
  return make_volt_error(volt_errc::invalid_request, std::string{what}
                                                       + ": unknown sequence "
                                                       + std::to_string(seq));
}

/// Plans one write: copies and the table after growth.
caf::expected<kv_write_plan> plan_write(page_table& pt, const kv_write& req) {
  auto copies = pt.prepare_write(req.seq, req.from, req.to);
  if (!copies)
    return copies.error();
  kv_write_plan plan;
  plan.seq = req.seq;
  plan.block_table = pt.block_table(req.seq);
  plan.copies.reserve(2 * copies->size());
  for (const auto& c : *copies) {
    plan.copies.push_back(c.src);
    plan.copies.push_back(c.dst);
  }
  return plan;
}

/// Plans a step's writes in order, preempting the newest sequence whenever a
/// write finds no free page. Ends: the oldest sequence always fits, because
/// every sequence alone fits the pool (checked at admission) and each round
/// releases one sequence.
caf::expected<kv_step_plan> plan_step(page_table& pt, const kv_step& step) {
  std::set<uint64_t> seen;
  for (const auto& w : step.writes) {
    if (!pt.contains(w.seq))
      return unknown_sequence("kv_step", w.seq);
    if (!seen.insert(w.seq).second)
      return make_volt_error(volt_errc::invalid_request,
                             "kv_step: sequence " + std::to_string(w.seq)
                               + " writes twice");
  }
  kv_step_plan result;
  std::set<uint64_t> preempted;
  for (const auto& w : step.writes) {
    while (preempted.count(w.seq) == 0) {
      auto plan = plan_write(pt, w);
      if (plan) {
        result.plans.push_back(std::move(*plan));
        break;
      }
      if (plan.error() != volt_errc::out_of_pages)
        return plan.error();
      auto victim = pt.sequences_by_admission().back();
      pt.release(victim);
      preempted.insert(victim);
      result.preempted.push_back(victim);
      // A victim planned earlier in this step no longer writes: its pages
      // went back to the pool.
      auto& plans = result.plans;
      plans.erase(std::remove_if(plans.begin(), plans.end(),
                                 [victim](const kv_write_plan& p) {
                                   return p.seq == victim;
                                 }),
                  plans.end());
    }
  }
  return result;
}

/// Releases `seq`; returns the pages it held.
caf::expected<int64_t> release_sequence(page_table& pt, uint64_t seq) {
  auto held = static_cast<int64_t>(pt.block_table(seq).size());
  if (auto err = pt.release(seq))
    return err;
  return held;
}

} // namespace

kv_page_manager_actor::behavior_type
kv_page_manager(kv_page_manager_pointer self, int64_t page_size,
                int64_t num_pages) {
  // [kv_cache] validation keeps these in range; clamping keeps a bad caller
  // from dividing by zero.
  self->state.table.emplace(std::max<int64_t>(page_size, 1),
                            std::max<int64_t>(num_pages, 0));
  auto& pt = *self->state.table;
  return {
    [&pt](kv_admit& req) -> caf::result<kv_admission> {
      if (req.headroom_pages < 0)
        return make_volt_error(volt_errc::invalid_request,
                               "kv_admit: headroom_pages is negative ("
                                 + std::to_string(req.headroom_pages) + ")");
      // A reserve that can never fit is refused by admit with its own error;
      // one that fits the pool waits while the headroom is not there.
      auto need = pt.pages_for(std::max<int64_t>(req.reserve_tokens, 0));
      if (req.headroom_pages > 0 && need <= pt.num_pages()
          && pt.available_pages() < need + req.headroom_pages)
        return make_volt_error(
          volt_errc::out_of_pages,
          "kv_admit: " + std::to_string(need) + " pages plus "
            + std::to_string(req.headroom_pages) + " headroom wanted, "
            + std::to_string(pt.available_pages()) + " available");
      auto admitted = pt.admit(req.seq, req.prompt, req.reserve_tokens);
      if (!admitted)
        return admitted.error();
      return kv_admission{std::move(admitted->block_table),
                          admitted->cached_tokens};
    },
    [&pt](const kv_write& req) -> caf::result<kv_write_plan> {
      auto plan = plan_write(pt, req);
      if (!plan)
        return plan.error();
      return std::move(*plan);
    },
    [&pt](const kv_step& req) -> caf::result<kv_step_plan> {
      auto plan = plan_step(pt, req);
      if (!plan)
        return plan.error();
      return std::move(*plan);
    },
    [&pt](const kv_commit& req) -> caf::result<int64_t> {
      if (auto err = pt.commit(req.seq, req.tokens, req.appended))
        return err;
      return pt.length(req.seq);
    },
    [&pt](const kv_sync& req) -> caf::result<int64_t> {
      for (const auto& c : req.commits)
        if (auto err = pt.commit(c.seq, c.tokens, c.appended))
          return err;
      int64_t released = 0;
      for (auto seq : req.releases) {
        auto held = release_sequence(pt, seq);
        if (!held)
          return held.error();
        released += *held;
      }
      return released;
    },
    [&pt](kv_fork_atom, uint64_t parent,
          uint64_t child) -> caf::result<std::vector<int32_t>> {
      if (auto err = pt.fork(parent, child))
        return err;
      return pt.block_table(child);
    },
    [&pt](kv_release_atom, uint64_t seq) -> caf::result<int64_t> {
      auto held = release_sequence(pt, seq);
      if (!held)
        return held.error();
      return *held;
    },
    [&pt](kv_table_atom, uint64_t seq) -> caf::result<std::vector<int32_t>> {
      if (!pt.contains(seq))
        return unknown_sequence("kv_table", seq);
      return pt.block_table(seq);
    },
    [&pt](kv_order_atom) { return pt.sequences_by_admission(); },
    [&pt](kv_stats_atom) { return pt.stats(); },
  };
}

} // namespace volt
