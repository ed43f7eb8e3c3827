#pragma once

// Messages of the KV page manager (actors/kv_page_manager.hpp). Page ids index
// the engine's kv_cache storage; a router may send these over the network, so
// the manager validates every field.

#include <cstdint>
#include <vector>

#include "caf/meta/type_name.hpp"
#include "model/page_table.hpp"

namespace volt {

/// Starts sequence `seq`: reuses cached pages of the prompt's leading full
/// pages and reserves pages for `reserve_tokens` tokens in total (the prompt;
/// later tokens get pages as they are written). Refused with out_of_pages
/// unless `headroom_pages` more pages stay available afterwards, so that the
/// sequences already running can grow without preempting the new one at once.
struct kv_admit {
  uint64_t seq = 0;
  std::vector<int32_t> prompt;
  int64_t reserve_tokens = 0;
  int64_t headroom_pages = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_admit& x) {
  return f(caf::meta::type_name("volt.kv_admit"), x.seq, x.prompt,
           x.reserve_tokens, x.headroom_pages);
}

/// The answer to `kv_admit`.
struct kv_admission {
  /// Page of token positions [i * page_size, (i + 1) * page_size).
  std::vector<int32_t> block_table;
  /// Leading prompt tokens already in the cache; compute from here on.
  int64_t cached_tokens = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_admission& x) {
  return f(caf::meta::type_name("volt.kv_admission"), x.block_table,
           x.cached_tokens);
}

/// Announces a write of K/V at positions [from, to) of `seq`; requires
/// from <= the sequence's computed tokens and from < to.
struct kv_write {
  uint64_t seq = 0;
  int64_t from = 0;
  int64_t to = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_write& x) {
  return f(caf::meta::type_name("volt.kv_write"), x.seq, x.from, x.to);
}

/// The answer to `kv_write`: copy first, then write through the new table.
struct kv_write_plan {
  uint64_t seq = 0;
  /// The sequence's block table after copy-on-write and growth.
  std::vector<int32_t> block_table;
  /// Pages to copy (every layer) before writing, as flat pairs: src0, dst0,
  /// src1, dst1, ...
  std::vector<int32_t> copies;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_write_plan& x) {
  return f(caf::meta::type_name("volt.kv_write_plan"), x.seq, x.block_table,
           x.copies);
}

/// Plans every write of one engine step, in order. When the pool runs out of
/// pages for a write, the most recently admitted live sequence is preempted
/// (its pages released; it may be the writer itself) until the write fits.
struct kv_step {
  std::vector<kv_write> writes;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_step& x) {
  return f(caf::meta::type_name("volt.kv_step"), x.writes);
}

/// The answer to `kv_step`.
struct kv_step_plan {
  /// One plan per write whose sequence was not preempted, in request order.
  /// Perform all copies, in order, before any write.
  std::vector<kv_write_plan> plans;
  /// Sequences preempted for room, in the order they were released.
  std::vector<uint64_t> preempted;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_step_plan& x) {
  return f(caf::meta::type_name("volt.kv_step_plan"), x.plans, x.preempted);
}

/// Reports that K/V of the first `tokens` tokens of `seq` is computed, after
/// appending `appended` (tokens sampled since the last commit) to the token ids
/// the manager knows; full pages enter the prefix cache.
struct kv_commit {
  uint64_t seq = 0;
  int64_t tokens = 0;
  std::vector<int32_t> appended;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_commit& x) {
  return f(caf::meta::type_name("volt.kv_commit"), x.seq, x.tokens, x.appended);
}

/// The end of an engine step in one message: `commits` first, then
/// `releases` (sequences that finished or failed), in order.
struct kv_sync {
  std::vector<kv_commit> commits;
  std::vector<uint64_t> releases;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_sync& x) {
  return f(caf::meta::type_name("volt.kv_sync"), x.commits, x.releases);
}

/// The manager's counters (see page_table_stats for each field).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, page_table_stats& x) {
  return f(caf::meta::type_name("volt.page_table_stats"), x.page_size,
           x.pages_total, x.pages_used, x.pages_shared, x.pages_cached,
           x.pages_evictable, x.pages_free, x.copy_on_write, x.prefix_lookups,
           x.prefix_hits, x.prefix_hit_tokens, x.evictions);
}

} // namespace volt
