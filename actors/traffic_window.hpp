#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <unordered_map>

namespace volt {

/// Counts batches and token rows per key (an expert, a host) in one-second
/// buckets over the last `window_seconds`, so that an operator can ask for
/// recent rates. Adding is a few integer operations on the engine's thread;
/// nothing runs in the background.
class traffic_window {
public:
  using clock_type = std::chrono::steady_clock;

  static constexpr int64_t window_seconds = 10;

  struct rates {
    double batches_per_second = 0;
    double rows_per_second = 0;
  };

  explicit traffic_window(clock_type::time_point origin = clock_type::now())
    : origin_(origin) {}

  /// One batch of `rows` rows for `key` at `now`.
  void add(uint64_t key, int64_t rows, clock_type::time_point now);

  /// Batches and rows per second for `key` over the window ending at `now`
  /// (over the time since the origin while that is shorter, at least one
  /// second).
  rates rate(uint64_t key, clock_type::time_point now) const;

  /// Drops what was counted for `key`.
  void forget(uint64_t key) {
    keys_.erase(key);
  }

private:
  struct bucket {
    int64_t second = -1;
    uint64_t batches = 0;
    uint64_t rows = 0;
  };

  int64_t second_of(clock_type::time_point t) const;

  clock_type::time_point origin_;
  std::unordered_map<uint64_t, std::array<bucket, window_seconds>> keys_;
};

} // namespace volt
