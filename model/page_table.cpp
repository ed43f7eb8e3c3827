#include "model/page_table.hpp"

#include <algorithm>
#include <string>

#include "base/error.hpp"
#include "model/sampler.hpp"

namespace volt {

namespace {

caf::error request_error(std::string what) {
  return make_volt_error(volt_errc::invalid_request, std::move(what));
}

std::string str(int64_t x) {
  return std::to_string(x);
}

} // namespace

uint64_t prefix_page_key(uint64_t parent_key, const int32_t* tokens,
                         int64_t n) {
  // Fixed arithmetic (no std::hash) so that every node computes the same keys.
  auto h = mix_bits(parent_key + 0x9e3779b97f4a7c15ULL);
  for (int64_t i = 0; i < n; ++i)
    h = mix_bits(h ^ static_cast<uint32_t>(tokens[i]));
  return h;
}

caf::expected<int64_t>
kv_pool_pages(int64_t num_pages, int64_t memory_mib, int64_t bytes_per_page,
              int64_t context_tokens, int64_t page_size) {
  if (num_pages > 0)
    return num_pages;
  if (memory_mib > 0) {
    auto pages = memory_mib * (int64_t{1} << 20)
                 / std::max<int64_t>(bytes_per_page, 1);
    if (pages == 0)
      return make_volt_error(volt_errc::invalid_config,
                             "[kv_cache] memory_mib: " + str(memory_mib)
                               + " MiB holds no KV page of "
                               + str(bytes_per_page)
                               + " bytes; raise it or set num_pages");
    return pages;
  }
  return std::max<int64_t>(1, (context_tokens + page_size - 1) / page_size);
}

int64_t page_table::bytes_per_page() {
  // A std::set node: three pointers, the colour and the id, plus malloc's
  // header.
  return static_cast<int64_t>(sizeof(page_info)) + 48;
}

page_table::page_table(int64_t page_size, int64_t num_pages,
                       key_function key_fn)
  : page_size_(page_size), num_pages_(num_pages), key_fn_(key_fn),
    pages_(static_cast<size_t>(num_pages)) {
  for (int64_t p = 0; p < num_pages; ++p)
    free_.insert(free_.end(), static_cast<int32_t>(p));
}

// -- sequences ----------------------------------------------------------------

caf::expected<page_admission>
page_table::admit(uint64_t seq, const std::vector<int32_t>& prompt,
                  int64_t reserve_tokens, bool reuse_cached) {
  if (contains(seq))
    return request_error("admit: sequence " + std::to_string(seq)
                         + " is already admitted");
  if (prompt.empty())
    return request_error("admit: sequence " + std::to_string(seq)
                         + " has an empty prompt");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0)
      return request_error("admit: prompt token " + std::to_string(i) + " is "
                           + str(prompt[i]) + " (token ids are >= 0)");
  if (reserve_tokens < 0)
    return request_error("admit: reserve_tokens is " + str(reserve_tokens)
                         + " (must be >= 0)");
  auto prompt_tokens = static_cast<int64_t>(prompt.size());
  if (auto err = check_fits(pages_for(prompt_tokens), "admit", prompt_tokens))
    return err;
  // Longest chain of cached full pages, leaving the last prompt token to be
  // computed: the engine needs its logits.
  auto max_hits = reuse_cached
                    ? (static_cast<int64_t>(prompt.size()) - 1) / page_size_
                    : int64_t{0};
  std::vector<int32_t> hits;
  uint64_t key = 0;
  int32_t parent = -1;
  for (int64_t i = 0; i < max_hits; ++i) {
    const auto* tokens = prompt.data() + i * page_size_;
    key = key_fn_(key, tokens, page_size_);
    auto page = lookup(key, parent, tokens);
    if (page < 0)
      break;
    hits.push_back(page);
    parent = page;
  }
  auto n_hits = static_cast<int64_t>(hits.size());
  auto table_pages = std::max(n_hits, pages_for(reserve_tokens));
  if (auto err = check_fits(table_pages, "admit", reserve_tokens))
    return err;
  // Referencing an evictable hit takes it out of the evictable pool.
  auto idle_hits = std::count_if(hits.begin(), hits.end(),
                                 [this](int32_t p) { return refs(p) == 0; });
  auto needed = table_pages - n_hits;
  if (needed > available_pages() - idle_hits)
    return make_volt_error(volt_errc::out_of_pages,
                           "admit: sequence " + std::to_string(seq) + " needs "
                             + str(needed) + " more KV pages, "
                             + str(available_pages() - idle_hits)
                             + " are available");
  auto& s = seqs_[seq];
  for (auto page : hits)
    add_ref(page);
  s.table = hits;
  for (int64_t i = 0; i < needed; ++i) {
    auto page = take_page();
    add_ref(page);
    s.table.push_back(page);
  }
  s.tokens = prompt;
  s.length = n_hits * page_size_;
  s.committed_pages = n_hits;
  s.admitted = next_admission_++;
  admission_order_.emplace(s.admitted, seq);
  stats_.prefix_lookups += reuse_cached ? 1 : 0;
  if (n_hits > 0) {
    stats_.prefix_hits += 1;
    stats_.prefix_hit_tokens += static_cast<uint64_t>(s.length);
  }
  return page_admission{s.table, s.length};
}

caf::expected<std::vector<page_copy>>
page_table::prepare_write(uint64_t seq, int64_t from, int64_t to) {
  auto found = find(seq, "prepare_write");
  if (!found)
    return found.error();
  auto& s = **found;
  if (from < 0 || to <= from)
    return request_error("prepare_write: positions [" + str(from) + ", "
                         + str(to) + ") of sequence " + std::to_string(seq)
                         + " are out of order or empty");
  if (from > s.length)
    return request_error("prepare_write: sequence " + std::to_string(seq)
                         + " would write from position " + str(from)
                         + " but has computed only " + str(s.length)
                         + " tokens (no gaps)");
  auto old_pages = static_cast<int64_t>(s.table.size());
  auto new_pages = std::max(old_pages, pages_for(to));
  if (auto err = check_fits(new_pages, "prepare_write", to))
    return err;
  auto first = from / page_size_;
  auto last = std::min(pages_for(to), old_pages);
  int64_t shared = 0;
  for (auto i = first; i < last; ++i)
    if (refs(s.table[static_cast<size_t>(i)]) > 1)
      ++shared;
  auto needed = shared + new_pages - old_pages;
  if (needed > available_pages())
    return make_volt_error(volt_errc::out_of_pages,
                           "prepare_write: sequence " + std::to_string(seq)
                             + " needs " + str(needed) + " more KV pages, "
                             + str(available_pages()) + " are available");
  std::vector<page_copy> copies;
  for (auto i = first; i < last; ++i) {
    auto& slot = s.table[static_cast<size_t>(i)];
    auto& info = pages_[static_cast<size_t>(slot)];
    if (info.refs > 1) {
      auto fresh = take_page();
      add_ref(fresh);
      drop_ref(slot);
      // A page holding none of this sequence's tokens yet has nothing to copy.
      if (i * page_size_ < s.length) {
        copies.push_back(page_copy{slot, fresh});
        stats_.copy_on_write += 1;
      }
      slot = fresh;
    } else if (info.cached) {
      // Sole owner rewrites a cached page in place: its cache entry (and those
      // chained below it) would no longer describe its contents.
      uncache(slot, false);
    }
  }
  for (auto i = old_pages; i < new_pages; ++i) {
    auto page = take_page();
    add_ref(page);
    s.table.push_back(page);
  }
  return copies;
}

caf::error page_table::commit(uint64_t seq, int64_t tokens,
                              const std::vector<int32_t>& appended) {
  auto found = find(seq, "commit");
  if (!found)
    return found.error();
  auto& s = **found;
  for (size_t i = 0; i < appended.size(); ++i)
    if (appended[i] < 0)
      return request_error("commit: appended token " + std::to_string(i)
                           + " is " + str(appended[i])
                           + " (token ids are >= 0)");
  auto known = static_cast<int64_t>(s.tokens.size() + appended.size());
  if (tokens < s.length)
    return request_error("commit: " + str(tokens) + " tokens for sequence "
                         + std::to_string(seq) + " is fewer than the "
                         + str(s.length) + " already computed");
  if (tokens > known)
    return request_error("commit: " + str(tokens) + " tokens for sequence "
                         + std::to_string(seq) + " but only " + str(known)
                         + " token ids are known");
  if (pages_for(tokens) > static_cast<int64_t>(s.table.size()))
    return request_error(
      "commit: " + str(tokens) + " tokens for sequence " + std::to_string(seq)
      + " but its pages hold only "
      + str(static_cast<int64_t>(s.table.size()) * page_size_));
  s.tokens.insert(s.tokens.end(), appended.begin(), appended.end());
  s.length = tokens;
  auto full = tokens / page_size_;
  if (full <= s.committed_pages || s.withheld)
    return {};
  // Walk the chain from the start: an earlier page of ours may be a duplicate
  // of a cached one (computed concurrently), and entries chain to the cached
  // page, not to our copy.
  uint64_t key = 0;
  int32_t parent = -1;
  for (int64_t i = 0; i < full; ++i) {
    auto page = s.table[static_cast<size_t>(i)];
    const auto* ids = s.tokens.data() + i * page_size_;
    key = key_fn_(key, ids, page_size_);
    auto& info = pages_[static_cast<size_t>(page)];
    if (info.cached) {
      parent = page;
      continue;
    }
    if (auto existing = lookup(key, parent, ids); existing >= 0) {
      parent = existing;
      continue;
    }
    info.cached = true;
    ++pages_cached_;
    info.key = key;
    info.parent = parent;
    info.tokens.assign(ids, ids + page_size_);
    if (parent >= 0)
      pages_[static_cast<size_t>(parent)].children.push_back(page);
    index_.emplace(key, page);
    parent = page;
  }
  s.committed_pages = full;
  return {};
}

caf::error page_table::withhold(uint64_t seq) {
  auto found = find(seq, "withhold");
  if (!found)
    return found.error();
  (*found)->withheld = true;
  return {};
}

caf::error page_table::fork(uint64_t parent, uint64_t child) {
  auto found = find(parent, "fork");
  if (!found)
    return found.error();
  if (contains(child))
    return request_error("fork: sequence " + std::to_string(child)
                         + " already exists");
  auto copy = **found;
  for (auto page : copy.table)
    add_ref(page);
  copy.admitted = next_admission_++;
  admission_order_.emplace(copy.admitted, child);
  seqs_.emplace(child, std::move(copy));
  return {};
}

caf::error page_table::release(uint64_t seq) {
  auto found = find(seq, "release");
  if (!found)
    return found.error();
  auto& s = **found;
  // Last page first: it becomes the least recently used, so that eviction
  // takes the ends of chains before their beginnings.
  for (auto i = s.table.rbegin(); i != s.table.rend(); ++i)
    drop_ref(*i);
  admission_order_.erase(s.admitted);
  seqs_.erase(seq);
  return {};
}

const std::vector<int32_t>& page_table::block_table(uint64_t seq) const {
  static const std::vector<int32_t> none;
  auto i = seqs_.find(seq);
  return i == seqs_.end() ? none : i->second.table;
}

int64_t page_table::length(uint64_t seq) const {
  auto i = seqs_.find(seq);
  return i == seqs_.end() ? -1 : i->second.length;
}

std::vector<uint64_t> page_table::sequences_by_admission() const {
  std::vector<uint64_t> result;
  result.reserve(admission_order_.size());
  for (const auto& entry : admission_order_)
    result.push_back(entry.second);
  return result;
}

page_table_stats page_table::stats() const {
  auto result = stats_;
  result.page_size = page_size_;
  result.pages_total = num_pages_;
  result.pages_used = pages_used_;
  result.pages_shared = pages_shared_;
  result.pages_cached = pages_cached_;
  result.pages_evictable = static_cast<int64_t>(lru_.size());
  result.pages_free = static_cast<int64_t>(free_.size());
  return result;
}

// -- pages --------------------------------------------------------------------

caf::error page_table::check_fits(int64_t pages, const char* what,
                                  int64_t tokens) const {
  if (pages <= num_pages_)
    return {};
  return request_error(std::string{what} + ": " + str(tokens) + " tokens need "
                       + str(pages) + " KV pages of " + str(page_size_)
                       + " tokens, the pool has only " + str(num_pages_)
                       + " pages");
}

caf::expected<page_table::sequence*> page_table::find(uint64_t seq,
                                                      const char* what) {
  auto i = seqs_.find(seq);
  if (i == seqs_.end())
    return request_error(std::string{what} + ": unknown sequence "
                         + std::to_string(seq));
  return &i->second;
}

int32_t page_table::take_page() {
  if (free_.empty())
    uncache(lru_.front(), true);
  auto page = *free_.begin();
  free_.erase(free_.begin());
  return page;
}

void page_table::add_ref(int32_t page) {
  auto& info = pages_[static_cast<size_t>(page)];
  if (info.refs == 0 && info.cached)
    lru_.erase(info.lru_pos);
  info.refs += 1;
  pages_used_ += info.refs == 1 ? 1 : 0;
  pages_shared_ += info.refs == 2 ? 1 : 0;
}

void page_table::drop_ref(int32_t page) {
  auto& info = pages_[static_cast<size_t>(page)];
  info.refs -= 1;
  pages_shared_ -= info.refs == 1 ? 1 : 0;
  if (info.refs > 0)
    return;
  pages_used_ -= 1;
  if (info.cached)
    info.lru_pos = lru_.insert(lru_.end(), page);
  else
    free_.insert(page);
}

void page_table::uncache(int32_t page, bool evicting) {
  auto& info = pages_[static_cast<size_t>(page)];
  // Children first: no entry may chain to a page that is gone.
  auto children = std::move(info.children);
  info.children.clear();
  for (auto child : children) {
    pages_[static_cast<size_t>(child)].parent = -1;
    uncache(child, true);
  }
  if (info.parent >= 0) {
    auto& siblings = pages_[static_cast<size_t>(info.parent)].children;
    siblings.erase(std::find(siblings.begin(), siblings.end(), page));
  }
  auto range = index_.equal_range(info.key);
  for (auto i = range.first; i != range.second; ++i)
    if (i->second == page) {
      index_.erase(i);
      break;
    }
  info.cached = false;
  --pages_cached_;
  info.parent = -1;
  info.tokens.clear();
  if (evicting)
    stats_.evictions += 1;
  if (info.refs == 0) {
    lru_.erase(info.lru_pos);
    free_.insert(page);
  }
}

int32_t page_table::lookup(uint64_t key, int32_t parent,
                           const int32_t* tokens) const {
  auto range = index_.equal_range(key);
  for (auto i = range.first; i != range.second; ++i) {
    const auto& info = pages_[static_cast<size_t>(i->second)];
    if (info.parent == parent
        && std::equal(info.tokens.begin(), info.tokens.end(), tokens))
      return i->second;
  }
  return -1;
}

} // namespace volt
