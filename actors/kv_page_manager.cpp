#include "actors/kv_page_manager.hpp"

#include <algorithm>
#include <string>

#include "base/error.hpp"

namespace volt {

namespace {

caf::error unknown_sequence(const char* what, uint64_t seq) {
  return make_volt_error(volt_errc::invalid_request, std::string{what}
                                                       + ": unknown sequence "
                                                       + std::to_string(seq));
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
      auto admitted = pt.admit(req.seq, req.prompt, req.reserve_tokens);
      if (!admitted)
        return admitted.error();
      return kv_admission{std::move(admitted->block_table),
                          admitted->cached_tokens};
    },
    [&pt](const kv_write& req) -> caf::result<kv_write_plan> {
      auto copies = pt.prepare_write(req.seq, req.from, req.to);
      if (!copies)
        return copies.error();
      kv_write_plan plan;
      plan.block_table = pt.block_table(req.seq);
      plan.copies.reserve(2 * copies->size());
      for (const auto& c : *copies) {
        plan.copies.push_back(c.src);
        plan.copies.push_back(c.dst);
      }
      return plan;
    },
    [&pt](const kv_commit& req) -> caf::result<int64_t> {
      if (auto err = pt.commit(req.seq, req.tokens, req.appended))
        return err;
      return pt.length(req.seq);
    },
    [&pt](kv_fork_atom, uint64_t parent,
          uint64_t child) -> caf::result<std::vector<int32_t>> {
      if (auto err = pt.fork(parent, child))
        return err;
      return pt.block_table(child);
    },
    [&pt](kv_release_atom, uint64_t seq) -> caf::result<int64_t> {
      auto held = static_cast<int64_t>(pt.block_table(seq).size());
      if (auto err = pt.release(seq))
        return err;
      return held;
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
