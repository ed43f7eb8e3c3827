#include "http/connection_watch.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace volt::http {

namespace {

/// The numeric address and port of `addr`.
bool address_of(const sockaddr_storage& addr, std::string& host, int& port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
    inet_ntop(AF_INET, &in.sin_addr, buf, sizeof(buf));
    port = ntohs(in.sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto& in = reinterpret_cast<const sockaddr_in6&>(addr);
    inet_ntop(AF_INET6, &in.sin6_addr, buf, sizeof(buf));
    port = ntohs(in.sin6_port);
  } else {
    return false;
  }
  host = buf;
  return true;
}

bool is_endpoint(int fd, bool peer, const std::string& host, int port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  if ((peer ? getpeername(fd, sa, &len) : getsockname(fd, sa, &len)) != 0)
    return false;
  std::string h;
  int p = 0;
  return address_of(addr, h, p) && p == port && h == host;
}

} // namespace

connection_watch::connection_watch(const std::string& local_addr,
                                   int local_port,
                                   const std::string& remote_addr,
                                   int remote_port) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr)
    return;
  while (auto* entry = readdir(dir)) {
    char* end = nullptr;
    auto fd = static_cast<int>(std::strtol(entry->d_name, &end, 10));
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir))
      continue;
    if (is_endpoint(fd, true, remote_addr, remote_port)
        && is_endpoint(fd, false, local_addr, local_port)) {
      fd_ = fd;
      break;
    }
  }
  closedir(dir);
}

bool connection_watch::closed() const {
  if (fd_ < 0)
    return false;
  pollfd p{fd_, POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0)
    return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

} // namespace volt::http
