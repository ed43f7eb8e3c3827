#pragma once

#include <memory>
#include <mutex>
#include <set>
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

/// The connections of one server that carry a request now. At shutdown the
/// server closes every other connection at once: httplib 0.11 would
/// otherwise let each idle keep-alive connection wait out its timeout before
/// its thread ends.
class busy_connections {
public:
  /// Marks the socket `fd` busy until the returned token is destroyed; -1
  /// marks nothing.
  std::shared_ptr<void> hold(int fd);

  /// Shuts down both directions of every connection accepted on local
  /// `port` that is not busy, so that its thread sees the end at once.
  void close_idle(int port);

private:
  std::mutex mtx_;
  std::multiset<int> fds_;
};

} // namespace volt::http
