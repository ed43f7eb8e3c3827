#pragma once

#include <cstdint>
#include <string>

namespace volt {

/// Memory this process can still take without the kernel killing it or
/// refusing it: MemAvailable of /proc/meminfo, or what the cgroup's
/// memory.max leaves when that is less.
struct host_memory {
  /// Bytes; -1 when neither source can be read (then nothing is checked).
  int64_t available = -1;
  /// Where the number came from, for messages: "MemAvailable in
  /// /proc/meminfo" or "the cgroup's memory.max".
  std::string source;
};

/// Reads the memory available now (see host_memory).
host_memory available_host_memory();

/// Renders a byte count for people: "512 B", "3.0 KiB", "12.5 GiB".
std::string render_size(double bytes);

} // namespace volt
