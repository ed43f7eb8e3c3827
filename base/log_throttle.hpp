#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace volt {

/// Lets at most `burst` log lines a second through, so that a peer sending
/// garbage cannot flood the log; the lines held back are counted and the next
/// line that passes says how many. Thread-safe.
class log_throttle {
public:
  explicit log_throttle(int burst = 5) : burst_(burst) {}

  /// Whether a line may be written now; when it may, `held_back` gets the
  /// number of lines suppressed since the last one that passed. (Not named
  /// `allow`: CAF's test DSL defines a macro of that name.)
  bool pass(uint64_t& held_back);

private:
  using clock = std::chrono::steady_clock;

  std::mutex mtx_;
  int burst_;
  clock::time_point window_start_;
  int passed_in_window_ = 0;
  uint64_t held_back_ = 0;
};

/// Lets one log line per key (e.g. a peer's address and what it did) through
/// per window: a peer that retries with a bad certificate every second is
/// logged once a window, not every time. The lines held back are counted:
/// `expired` hands them out for a summary once their window is over.
/// Thread-safe.
class per_key_log_throttle {
public:
  using clock = std::chrono::steady_clock;

  explicit per_key_log_throttle(clock::duration window) : window_(window) {}

  /// Whether the line for `key` may be written at `now`: the first time, and
  /// the first time after its window ended.
  bool pass(const std::string& key, clock::time_point now);

  /// Forgets keys whose window ended before `now`; returns those among them
  /// with lines held back, and how many.
  std::vector<std::pair<std::string, uint64_t>> expired(clock::time_point now);

  /// Whether a key is still in its window (the caller should call `expired`
  /// later).
  bool pending() const;

  clock::duration window() const {
    return window_;
  }

private:
  struct entry {
    clock::time_point opened;
    uint64_t held_back = 0;
  };

  mutable std::mutex mtx_;
  clock::duration window_;
  std::map<std::string, entry> keys_;
};

} // namespace volt
