#include "base/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace volt {

namespace {

std::atomic<int> threshold{static_cast<int>(log_level::info)};
std::mutex output_mutex;

const char* level_name(log_level level) {
  switch (level) {
    case log_level::debug: return "DEBUG";
    case log_level::info: return "INFO";
    case log_level::warning: return "WARN";
    case log_level::error: return "ERROR";
    default: return "";
  }
}

} // namespace

void set_log_level(log_level level) {
  threshold = static_cast<int>(level);
}

log_level current_log_level() {
  return static_cast<log_level>(threshold.load());
}

bool parse_log_level(const std::string& text, log_level& out) {
  static constexpr std::pair<const char*, log_level> names[] = {
    {"debug", log_level::debug},     {"info", log_level::info},
    {"warning", log_level::warning}, {"error", log_level::error},
    {"quiet", log_level::quiet},
  };
  for (auto& [name, level] : names)
    if (text == name) {
      out = level;
      return true;
    }
  return false;
}

void log_line(log_level level, const char* component, const std::string& text) {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = system_clock::to_time_t(now);
  auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count()
                % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[32];
  std::snprintf(stamp, sizeof(stamp), "%02d:%02d:%02d.%03d", tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(millis));
  std::lock_guard<std::mutex> guard{output_mutex};
  std::fprintf(stderr, "%s %-5s %s: %s\n", stamp, level_name(level), component,
               text.c_str());
  std::fflush(stderr);
}

} // namespace volt
