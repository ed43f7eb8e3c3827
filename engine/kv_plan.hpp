#pragma once

// The engine's two uses of the KV page table beyond single calls: admitting a
// sequence while keeping room for the running ones to grow, and planning a
// step's writes with preemption when the pool runs out.

#include <cstdint>
#include <vector>

#include "caf/expected.hpp"
#include "model/page_table.hpp"

namespace volt {

/// Positions [from, to) of `seq` that the next step writes.
struct kv_write {
  uint64_t seq = 0;
  int64_t from = 0;
  int64_t to = 0;
};

/// The copy-on-write page copies one sequence's write needs.
struct kv_write_copies {
  uint64_t seq = 0;
  std::vector<page_copy> copies;
};

/// What the writes of one step need first.
struct kv_step_plan {
  /// Copy-on-write page copies of the writes that stay, in order; all of
  /// them before any write.
  std::vector<kv_write_copies> copies;
  /// Sequences released to make room, in order; their writes are dropped.
  std::vector<uint64_t> preempted;
};

/// Starts `seq` with `prompt` and pages for `reserve_tokens` tokens, unless
/// fewer than `headroom_pages` pages would stay available afterwards (errors
/// out_of_pages: the running sequences could not grow without preempting the
/// new one at once). A reserve that can never fit the pool is refused by
/// page_table::admit (invalid_request), headroom or not. `reuse_cached` as
/// page_table::admit.
caf::expected<page_admission> admit_with_headroom(page_table& pt, uint64_t seq,
                                                  const std::vector<int32_t>& prompt,
                                                  int64_t reserve_tokens,
                                                  int64_t headroom_pages,
                                                  bool reuse_cached = true);

/// Makes every write of a step writable, in order. When a write finds no free
/// page, the most recently admitted live sequence is released (preempted;
/// it may be the writer itself) until the write fits. Terminates: every
/// sequence alone fits the pool (checked at admission) and each round
/// releases one. Errors (invalid_request): an unknown sequence, a sequence
/// writing twice, or a write page_table::prepare_write refuses.
caf::expected<kv_step_plan> plan_kv_step(page_table& pt,
                                         const std::vector<kv_write>& writes);

} // namespace volt
