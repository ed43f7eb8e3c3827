#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

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

} // namespace volt
