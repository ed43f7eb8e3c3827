#include "base/log_throttle.hpp"

namespace volt {

bool log_throttle::pass(uint64_t& held_back) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto now = clock::now();
  if (now - window_start_ >= std::chrono::seconds{1}) {
    window_start_ = now;
    passed_in_window_ = 0;
  }
  if (passed_in_window_ >= burst_) {
    ++held_back_;
    return false;
  }
  ++passed_in_window_;
  held_back = held_back_;
  held_back_ = 0;
  return true;
}

bool per_key_log_throttle::pass(const std::string& key, clock::time_point now) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto [at, added] = keys_.try_emplace(key, entry{now, 0});
  if (added)
    return true;
  if (now - at->second.opened >= window_) {
    // The caller missed `expired`: start a new window, and keep the count
    // for the summary it will still get.
    at->second.opened = now;
    return true;
  }
  ++at->second.held_back;
  return false;
}

std::vector<std::pair<std::string, uint64_t>>
per_key_log_throttle::expired(clock::time_point now) {
  std::vector<std::pair<std::string, uint64_t>> result;
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto at = keys_.begin(); at != keys_.end();) {
    if (now - at->second.opened < window_) {
      ++at;
      continue;
    }
    if (at->second.held_back > 0)
      result.emplace_back(at->first, at->second.held_back);
    at = keys_.erase(at);
  }
  return result;
}

bool per_key_log_throttle::pending() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return !keys_.empty();
}

} // namespace volt
