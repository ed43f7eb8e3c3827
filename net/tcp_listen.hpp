#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "caf/expected.hpp"

namespace volt {

/// A listening TCP socket and the port it is bound to.
struct listening_socket {
  int fd = -1;
  uint16_t port = 0;
};

/// Binds host:port (SO_REUSEADDR, close-on-exec, plus `extra_flags` such as
/// SOCK_NONBLOCK) and listens. The error's text says only why it failed
/// ("cannot resolve the host", "Address already in use"): callers name the
/// config key.
caf::expected<listening_socket> listen_tcp(const std::string& host,
                                           uint16_t port, int extra_flags = 0);

/// "address:port" of a socket address, numeric (no DNS).
std::string numeric_address(const sockaddr_storage& addr, socklen_t len);

} // namespace volt
