#include "model/host_memory.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

namespace volt {

namespace {

/// The first line of `path` as an integer, or -1 ("max", missing, garbage).
int64_t read_number(const char* path) {
  std::ifstream in{path};
  std::string text;
  if (!std::getline(in, text) || text.empty() || text == "max")
    return -1;
  try {
    return std::stoll(text);
  } catch (...) {
    return -1;
  }
}

int64_t mem_available() {
  std::ifstream in{"/proc/meminfo"};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words{line};
    std::string key;
    int64_t kib = 0;
    if (words >> key >> kib && key == "MemAvailable:")
      return kib * 1024;
  }
  return -1;
}

} // namespace

host_memory available_host_memory() {
  host_memory result;
  auto avail = mem_available();
  if (avail >= 0)
    result = {avail, "MemAvailable in /proc/meminfo"};
  // cgroup v2: the limit of this process's group, minus what it uses.
  auto limit = read_number("/sys/fs/cgroup/memory.max");
  auto used = read_number("/sys/fs/cgroup/memory.current");
  if (limit >= 0 && used >= 0) {
    auto left = limit > used ? limit - used : 0;
    if (result.available < 0 || left < result.available)
      result = {left, "the cgroup's memory.max"};
  }
  return result;
}

std::string render_size(double bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 5) {
    bytes /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), unit == 0 ? "%.0f %s" : "%.1f %s", bytes,
                units[unit]);
  return buf;
}

} // namespace volt
