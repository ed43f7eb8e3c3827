#include "engine/kv_plan.hpp"

#include <algorithm>
#include <set>
#include <string>

#include "base/error.hpp"

namespace volt {

caf::expected<page_admission> admit_with_headroom(page_table& pt, uint64_t seq,
                                                  const std::vector<int32_t>& prompt,
                                                  int64_t reserve_tokens,
                                                  int64_t headroom_pages,
                                                  bool reuse_cached) {
  if (headroom_pages < 0)
    return make_volt_error(volt_errc::invalid_request,
                           "admit: headroom_pages is negative ("
                             + std::to_string(headroom_pages) + ")");
  auto need = pt.pages_for(std::max<int64_t>(reserve_tokens, 0));
  if (headroom_pages > 0 && need <= pt.num_pages()
      && pt.available_pages() < need + headroom_pages)
    return make_volt_error(volt_errc::out_of_pages,
                           "admit: " + std::to_string(need) + " pages plus "
                             + std::to_string(headroom_pages)
                             + " headroom wanted, "
                             + std::to_string(pt.available_pages())
                             + " available");
  return pt.admit(seq, prompt, reserve_tokens, reuse_cached);
}

caf::expected<kv_step_plan> plan_kv_step(page_table& pt,
                                         const std::vector<kv_write>& writes) {
  std::set<uint64_t> seen;
  for (const auto& w : writes) {
    if (!pt.contains(w.seq))
      return make_volt_error(volt_errc::invalid_request,
                             "kv step: unknown sequence "
                               + std::to_string(w.seq));
    if (!seen.insert(w.seq).second)
      return make_volt_error(volt_errc::invalid_request,
                             "kv step: sequence " + std::to_string(w.seq)
                               + " writes twice");
  }
  kv_step_plan result;
  std::vector<kv_write_copies> planned;
  std::set<uint64_t> preempted;
  for (const auto& w : writes) {
    while (preempted.count(w.seq) == 0) {
      auto copies = pt.prepare_write(w.seq, w.from, w.to);
      if (copies) {
        planned.push_back(kv_write_copies{w.seq, std::move(*copies)});
        break;
      }
      if (copies.error() != volt_errc::out_of_pages)
        return copies.error();
      auto victim = pt.sequences_by_admission().back();
      pt.release(victim);
      preempted.insert(victim);
      result.preempted.push_back(victim);
    }
  }
  // A victim planned earlier in the step no longer writes; its copies went
  // into pages that are free again and must not be made.
  for (auto& w : planned)
    if (preempted.count(w.seq) == 0 && !w.copies.empty())
      result.copies.push_back(std::move(w));
  return result;
}

} // namespace volt
