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

} // namespace volt
