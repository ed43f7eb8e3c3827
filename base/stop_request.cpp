#include "base/stop_request.hpp"

#include <mutex>

namespace volt {

namespace {

std::mutex handler_mutex;
std::function<void(int)> stop_handler;
bool stop_requested = false;

} // namespace

void set_stop_handler(std::function<void(int exit_code)> handler) {
  std::lock_guard<std::mutex> guard{handler_mutex};
  stop_handler = std::move(handler);
  stop_requested = false;
}

void request_stop(int exit_code) {
  std::lock_guard<std::mutex> guard{handler_mutex};
  if (!stop_handler || stop_requested)
    return;
  stop_requested = true;
  stop_handler(exit_code);
}

} // namespace volt
