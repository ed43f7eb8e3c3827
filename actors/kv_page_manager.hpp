#pragma once

#include <cstdint>
#include <optional>

#include "actors/type_ids.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "model/page_table.hpp"

namespace volt {

struct kv_page_manager_state {
  std::optional<page_table> table;

  static inline const char* name = "volt.kv_page_manager";
};

using kv_page_manager_pointer
  = kv_page_manager_actor::stateful_pointer<kv_page_manager_state>;

/// Owns the paging policy of one node's KV pool of `num_pages` pages of
/// `page_size` tokens (the engine owns the K/V storage). Replies carry block
/// tables, copy lists and counters; a malformed or impossible request gets an
/// error reply (invalid_request, or out_of_pages when the pool is full right
/// now, leaving the state unchanged), since requests may come from another
/// node. Preemption is the caller's choice: ask `kv_order_atom` for the
/// admission order and release the newest.
kv_page_manager_actor::behavior_type
kv_page_manager(kv_page_manager_pointer self, int64_t page_size,
                int64_t num_pages);

} // namespace volt
