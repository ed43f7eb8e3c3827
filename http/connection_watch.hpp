#pragma once

#include <string>

namespace volt::http {

/// Tells whether the client of the request being handled has gone away, so
/// that its generation can be cancelled while the handler waits for tokens
/// (httplib 0.11 hands handlers no socket and notices a closed connection
/// only when a write fails).
class connection_watch {
public:
  /// Finds this process's socket whose local and peer addresses are those of
  /// the request (a scan of /proc/self/fd, once per request). Without one
  /// found, closed() is always false.
  connection_watch(const std::string& local_addr, int local_port,
                   const std::string& remote_addr, int remote_port);

  /// Whether the peer closed its side (or the connection broke).
  bool closed() const;

  /// The socket, or -1 when it was not found.
  int fd() const {
    return fd_;
  }

private:
  int fd_ = -1;
};

} // namespace volt::http
