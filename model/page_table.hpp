#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <set>
#include <unordered_map>
#include <vector>

#include "caf/error.hpp"
#include "caf/expected.hpp"
#include "caf/meta/type_name.hpp"

namespace volt {

/// One page copy the engine performs on the K/V storage (every layer) before it
/// writes: page `src` to page `dst`.
struct page_copy {
  int32_t src = -1;
  int32_t dst = -1;

  friend bool operator==(const page_copy& x, const page_copy& y) {
    return x.src == y.src && x.dst == y.dst;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, page_copy& x) {
  return f(x.src, x.dst);
}

/// What `page_table::admit` hands the engine.
struct page_admission {
  /// Page of token positions [i * page_size, (i + 1) * page_size).
  std::vector<int32_t> block_table;
  /// Leading prompt tokens whose K/V the prefix cache already holds; the engine
  /// computes from this position on.
  int64_t cached_tokens = 0;
};

/// Counters of a page_table; every page is exactly one of used, evictable
/// (cached with no reference) or free.
struct page_table_stats {
  int64_t page_size = 0;
  int64_t pages_total = 0;
  /// Pages with at least one reference.
  int64_t pages_used = 0;
  /// Pages with more than one reference.
  int64_t pages_shared = 0;
  /// Pages in the prefix cache, referenced or not.
  int64_t pages_cached = 0;
  /// Cached pages without a reference: resident until memory is needed.
  int64_t pages_evictable = 0;
  /// Pages on the free list.
  int64_t pages_free = 0;
  /// Pages copied because a sequence wrote into a shared page.
  uint64_t copy_on_write = 0;
  /// Admissions that looked up their prompt in the prefix cache.
  uint64_t prefix_lookups = 0;
  /// Admissions that reused at least one cached page.
  uint64_t prefix_hits = 0;
  /// Prompt tokens whose K/V came from the prefix cache.
  uint64_t prefix_hit_tokens = 0;
  /// Cached pages dropped to make room (or because their parent was dropped).
  uint64_t evictions = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, page_table_stats& x) {
  return f(caf::meta::type_name("volt.page_table_stats"), x.page_size,
           x.pages_total, x.pages_used, x.pages_shared, x.pages_cached,
           x.pages_evictable, x.pages_free, x.copy_on_write, x.prefix_lookups,
           x.prefix_hits, x.prefix_hit_tokens, x.evictions);
}

/// Returns the key of a full page whose parent page has key `parent_key` (0 for
/// the first page of a sequence) and that holds `tokens[0, n)`.
uint64_t prefix_page_key(uint64_t parent_key, const int32_t* tokens, int64_t n);

/// Number of KV pages of the pool: `num_pages` when set (> 0); else as many
/// pages of `bytes_per_page` as fit in `memory_mib` MiB when set; else enough
/// for one sequence of `context_tokens` tokens. Errors (invalid_config) when a
/// memory budget holds no page.
caf::expected<int64_t> kv_pool_pages(int64_t num_pages, int64_t memory_mib,
                                     int64_t bytes_per_page,
                                     int64_t context_tokens, int64_t page_size);

/// The paging policy of a KV cache (metadata only: page ids index the
/// executor's K/V storage). Pages are reference-counted and shared between forked
/// sequences; the first write into a shared page copies it (copy-on-write).
/// Full pages are keyed by a hash chain of their token ids so that later
/// prompts starting with the same tokens reuse their K/V (prefix cache); cached
/// pages without references stay resident until memory is needed and are then
/// evicted least-recently-used first.
///
/// The engine's protocol per sequence: `admit` (or `fork`), then per step
/// `prepare_write` for the positions it is about to write (perform the copies
/// it returns, then write), then `commit` once the K/V is computed, and
/// finally `release`. Every failing call leaves the state unchanged.
class page_table {
public:
  using key_function = uint64_t (*)(uint64_t, const int32_t*, int64_t);

  /// A pool of `num_pages` pages of `page_size` tokens. `key_fn` replaces the
  /// page hash (tests use it to force collisions).
  page_table(int64_t page_size, int64_t num_pages,
             key_function key_fn = prefix_page_key);

  /// Starts sequence `seq` with `prompt`: reuses the longest chain of cached
  /// full pages that matches the prompt's leading pages (never the page of the
  /// last prompt token, which the engine must compute to get logits; none
  /// without `reuse_cached`) and allocates pages for `reserve_tokens` tokens
  /// in total. Errors: invalid_request (known seq, empty prompt, negative
  /// token or reserve, or a prompt or reserve needing more pages than the
  /// pool has), out_of_pages (not now).
  caf::expected<page_admission> admit(uint64_t seq,
                                      const std::vector<int32_t>& prompt,
                                      int64_t reserve_tokens,
                                      bool reuse_cached = true);

  /// Makes positions [from, to) of `seq` writable: replaces every shared page
  /// in that range with a fresh one and returns the copies the engine must
  /// perform first (a page whose positions hold no data yet is replaced
  /// without a copy), then grows the table to cover `to`. A cached page that
  /// only `seq` holds is rewritten in place and leaves the prefix cache (with
  /// the entries chained below it). Requires 0 <= from <= length(seq) (no
  /// gaps) and from < to. Errors as `admit`.
  caf::expected<std::vector<page_copy>> prepare_write(uint64_t seq,
                                                      int64_t from, int64_t to);

  /// Records that K/V of the first `tokens` tokens of `seq` is computed, after
  /// appending `appended` (token ids sampled since the last call) to the
  /// tokens it knows; registers its full pages in the prefix cache. Requires
  /// length(seq) <= tokens <= known token ids and pages covering `tokens`.
  caf::error commit(uint64_t seq, int64_t tokens,
                    const std::vector<int32_t>& appended = {});

  /// Keeps the pages `seq` commits from now on out of the prefix cache: its
  /// K/V was computed in a way later prompts must not inherit (degraded
  /// routing). Forks made afterwards inherit it.
  caf::error withhold(uint64_t seq);

  /// Starts `child` as a copy of `parent` sharing all its pages.
  caf::error fork(uint64_t parent, uint64_t child);

  /// Ends `seq`: drops its references; unreferenced pages return to the free
  /// list or, when cached, become evictable (the last page first).
  caf::error release(uint64_t seq);

  /// Returns whether `seq` is known.
  bool contains(uint64_t seq) const {
    return seqs_.count(seq) != 0;
  }

  /// Returns the block table of `seq` (empty for an unknown seq).
  const std::vector<int32_t>& block_table(uint64_t seq) const;

  /// Returns the tokens of `seq` whose K/V is computed (-1 for an unknown seq).
  int64_t length(uint64_t seq) const;

  /// Returns the reference count of `page`.
  int32_t refs(int32_t page) const {
    return pages_[static_cast<size_t>(page)].refs;
  }

  /// Returns the live sequences, oldest admission (or fork) first; preemption
  /// takes the back.
  std::vector<uint64_t> sequences_by_admission() const;

  /// Returns the pages that `admit`/`prepare_write` can take without
  /// preempting (free plus evictable).
  int64_t available_pages() const {
    return static_cast<int64_t>(free_.size() + lru_.size());
  }

  page_table_stats stats() const;

  int64_t page_size() const {
    return page_size_;
  }

  int64_t num_pages() const {
    return num_pages_;
  }

  /// Host bytes a page's record takes (its entry and its free-list node),
  /// for checking a pool's size before it is built.
  static int64_t bytes_per_page();

  /// Pages needed to hold `n_tokens` tokens.
  int64_t pages_for(int64_t n_tokens) const {
    // No overflow for any int64 count (they may come off the network).
    return n_tokens / page_size_ + (n_tokens % page_size_ > 0 ? 1 : 0);
  }

private:
  struct page_info {
    int32_t refs = 0;
    bool cached = false;
    /// Prefix-cache entry, valid while cached.
    uint64_t key = 0;
    int32_t parent = -1;
    std::vector<int32_t> tokens;
    std::vector<int32_t> children;
    std::list<int32_t>::iterator lru_pos;
  };

  struct sequence {
    std::vector<int32_t> table;
    std::vector<int32_t> tokens;
    int64_t length = 0;
    /// Leading full pages already matched against the prefix cache.
    int64_t committed_pages = 0;
    uint64_t admitted = 0;
    /// Its pages stay out of the prefix cache (see withhold).
    bool withheld = false;
  };

  caf::error check_fits(int64_t pages, const char* what, int64_t tokens) const;
  caf::expected<sequence*> find(uint64_t seq, const char* what);

  /// Takes a free page, evicting the least recently used cached page if none is
  /// free; the caller checked available_pages().
  int32_t take_page();
  void add_ref(int32_t page);
  void drop_ref(int32_t page);
  /// Removes `page` and its cached descendants from the prefix cache;
  /// unreferenced ones return to the free list. Counts `page` as an eviction
  /// if `evicting`, its descendants always.
  void uncache(int32_t page, bool evicting);
  /// Finds the cached page with `key`, parent `parent` and `tokens`; -1 if
  /// none.
  int32_t lookup(uint64_t key, int32_t parent, const int32_t* tokens) const;

  int64_t page_size_;
  int64_t num_pages_;
  key_function key_fn_;
  std::vector<page_info> pages_;
  /// Lowest page id first, so that traces read easily.
  std::set<int32_t> free_;
  /// Cached pages without references, least recently used first.
  std::list<int32_t> lru_;
  std::unordered_multimap<uint64_t, int32_t> index_;
  std::unordered_map<uint64_t, sequence> seqs_;
  std::map<uint64_t, uint64_t> admission_order_;
  uint64_t next_admission_ = 0;
  page_table_stats stats_;
  // Kept as pages change, not counted at stats(): the engine reads stats
  // every step and a GPU pool holds 10^5 pages.
  int64_t pages_used_ = 0;
  int64_t pages_shared_ = 0;
  int64_t pages_cached_ = 0;
};

} // namespace volt
