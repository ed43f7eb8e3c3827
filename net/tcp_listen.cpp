#include "net/tcp_listen.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "base/error.hpp"
#include "config/endpoint.hpp"

namespace volt {

caf::expected<listening_socket> listen_tcp(const std::string& host,
                                           uint16_t port, int extra_flags) {
  auto fail = [](std::string why) {
    return make_volt_error(volt_errc::invalid_config, std::move(why));
  };
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found)
      != 0)
    return fail("cannot resolve the host");
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> addrs{found, freeaddrinfo};
  int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | extra_flags,
                  0);
  if (fd < 0)
    return fail(std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, 64) != 0) {
    auto why = std::string{std::strerror(errno)};
    close(fd);
    return fail(why);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  listening_socket result;
  result.fd = fd;
  result.port = ntohs(bound.ss_family == AF_INET6
                        ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return result;
}

std::string numeric_address(const sockaddr_storage& addr, socklen_t len) {
  char host[NI_MAXHOST] = "?";
  char serv[NI_MAXSERV] = "?";
  getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, host, sizeof(host),
              serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV);
  return bracket_host(host) + ":" + serv;
}

} // namespace volt
