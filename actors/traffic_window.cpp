#include "actors/traffic_window.hpp"

#include <algorithm>

namespace volt {

int64_t traffic_window::second_of(clock_type::time_point t) const {
  return std::chrono::duration_cast<std::chrono::seconds>(t - origin_).count();
}

void traffic_window::add(uint64_t key, int64_t rows,
                         clock_type::time_point now) {
  auto second = second_of(now);
  auto& b = keys_[key][static_cast<size_t>(second % window_seconds)];
  if (b.second != second)
    b = bucket{second, 0, 0};
  ++b.batches;
  b.rows += static_cast<uint64_t>(rows);
}

traffic_window::rates traffic_window::rate(uint64_t key,
                                           clock_type::time_point now) const {
  auto i = keys_.find(key);
  if (i == keys_.end())
    return {};
  auto current = second_of(now);
  uint64_t batches = 0;
  uint64_t rows = 0;
  for (const auto& b : i->second)
    if (b.second > current - window_seconds && b.second <= current) {
      batches += b.batches;
      rows += b.rows;
    }
  // The buckets cover the window's full seconds and the current one so far.
  auto elapsed = std::chrono::duration<double>(now - origin_).count();
  auto into_current = elapsed - static_cast<double>(current);
  auto span = std::min(elapsed, static_cast<double>(window_seconds - 1)
                                  + into_current);
  span = std::max(span, 1.0);
  return {static_cast<double>(batches) / span,
          static_cast<double>(rows) / span};
}

} // namespace volt
