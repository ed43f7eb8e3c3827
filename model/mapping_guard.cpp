#include "model/mapping_guard.hpp"

#include <atomic>
#include <csignal>
#include <cstring>
#include <ctime>
#include <mutex>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "base/error.hpp"

namespace volt {

namespace {

/// What a file looked like when it was mapped.
struct mapping_record {
  const void* begin;
  int fd;
  std::string path;
  off_t size;
  timespec mtime;
};

std::mutex records_mutex;
std::vector<mapping_record> records;

/// The signal handler cannot take locks or allocate: it reads these slots,
/// each published by a release store of `begin` after its other fields.
struct signal_slot {
  std::atomic<const uint8_t*> begin{nullptr};
  size_t size = 0;
  char line[768] = {};
  size_t line_size = 0;
};

constexpr size_t max_signal_slots = 4096;
signal_slot signal_slots[max_signal_slots];

void on_sigbus(int sig, siginfo_t* info, void*) {
  auto* addr = static_cast<const uint8_t*>(info->si_addr);
  for (auto& slot : signal_slots) {
    auto* begin = slot.begin.load(std::memory_order_acquire);
    if (begin != nullptr && addr >= begin && addr < begin + slot.size) {
      (void)!::write(STDERR_FILENO, slot.line, slot.line_size);
      ::_exit(exit_checkpoint_changed);
    }
  }
  // Not one of ours: crash as the default action would.
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, nullptr);
  });
}

void fill_slot(signal_slot& slot, const void* begin, size_t size,
               const std::string& path) {
  auto line = "volt-node: " + path
              + ": the file was truncated while this process had it mapped "
                "(SIGBUS reading its weights); replace checkpoint files by "
                "renaming a complete new file over the old one, never by "
                "writing into it; exiting\n";
  if (line.size() > sizeof(slot.line))
    line = line.substr(0, sizeof(slot.line) - 1) + "\n";
  std::memcpy(slot.line, line.data(), line.size());
  slot.line_size = line.size();
  slot.size = size;
  slot.begin.store(static_cast<const uint8_t*>(begin),
                   std::memory_order_release);
}

bool same_time(const timespec& a, const timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

std::string render_time(const timespec& t) {
  std::tm tm{};
  gmtime_r(&t.tv_sec, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

} // namespace

void guard_mapping(const void* begin, size_t size, int fd,
                   const std::string& path) {
  install_handler();
  struct stat st;
  if (::fstat(fd, &st) != 0)
    std::memset(&st, 0, sizeof(st));
  std::lock_guard<std::mutex> guard{records_mutex};
  records.push_back(mapping_record{begin, fd, path, st.st_size, st.st_mtim});
  for (auto& slot : signal_slots)
    if (slot.begin.load(std::memory_order_relaxed) == nullptr) {
      fill_slot(slot, begin, size, path);
      break;
    }
}

void unguard_mapping(const void* begin) {
  std::lock_guard<std::mutex> guard{records_mutex};
  for (auto& slot : signal_slots)
    if (slot.begin.load(std::memory_order_relaxed) == begin)
      slot.begin.store(nullptr, std::memory_order_release);
  for (auto i = records.begin(); i != records.end(); ++i)
    if (i->begin == begin) {
      records.erase(i);
      break;
    }
}

caf::error check_mapped_files() {
  std::lock_guard<std::mutex> guard{records_mutex};
  for (const auto& r : records) {
    struct stat st;
    if (::fstat(r.fd, &st) != 0)
      continue;
    std::string what;
    if (st.st_size != r.size)
      what = "its size went from " + std::to_string(r.size) + " to "
             + std::to_string(st.st_size) + " bytes";
    else if (!same_time(st.st_mtim, r.mtime))
      what = "it was written in place (modified " + render_time(st.st_mtim)
             + ")";
    else
      continue;
    return make_volt_error(
      volt_errc::invalid_checkpoint,
      r.path + ": changed on disk while this node serves from it (" + what
        + "); stopping rather than computing with changed weights. Replace "
          "checkpoint files by renaming a complete new file over the old one, "
          "then restart the node");
  }
  return caf::none;
}

} // namespace volt
