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

/// Calls `visit(fd)` for each open descriptor of this process until it
/// returns true.
template <class Visit>
void for_each_fd(Visit visit) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr)
    return;
  while (auto* entry = readdir(dir)) {
    char* end = nullptr;
    auto fd = static_cast<int>(std::strtol(entry->d_name, &end, 10));
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir))
      continue;
    if (visit(fd))
      break;
  }
  closedir(dir);
}

/// The local port of a connected TCP socket, or -1 for anything else.
int connected_local_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return -1;
  len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return -1;
  std::string host;
  int port = -1;
  return address_of(addr, host, port) ? port : -1;
}

} // namespace

connection_watch::connection_watch(const std::string& local_addr,
                                   int local_port,
                                   const std::string& remote_addr,
                                   int remote_port) {
  for_each_fd([&](int fd) {
    if (!is_endpoint(fd, true, remote_addr, remote_port)
        || !is_endpoint(fd, false, local_addr, local_port))
      return false;
    fd_ = fd;
    return true;
  });
}

bool connection_watch::closed() const {
  if (fd_ < 0)
    return false;
  pollfd p{fd_, POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0)
    return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

std::shared_ptr<void> busy_connections::hold(int fd) {
  if (fd < 0)
    return nullptr;
  std::lock_guard<std::mutex> guard{mtx_};
  fds_.insert(fd);
  return std::shared_ptr<void>{nullptr, [this, fd](void*) {
                                 std::lock_guard<std::mutex> guard{mtx_};
                                 fds_.erase(fds_.find(fd));
                               }};
}

void busy_connections::close_idle(int port) {
  std::lock_guard<std::mutex> guard{mtx_};
  for_each_fd([&](int fd) {
    if (fds_.count(fd) == 0 && connected_local_port(fd) == port)
      shutdown(fd, SHUT_RDWR);
    return false;
  });
}

} // namespace volt::http
