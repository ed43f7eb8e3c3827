#include "net/port_guard.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "base/error.hpp"
#include "base/log.hpp"
#include "net/basp_hello.hpp"
#include "net/rejection_log.hpp"
#include "net/tcp_listen.hpp"
#include "net/tls_watch.hpp"

namespace volt {

namespace {

using clock = std::chrono::steady_clock;

/// One read's worth of bytes. A direction whose receiver is slow keeps at
/// most this much and stops reading its sender meanwhile (back-pressure).
constexpr size_t chunk_size = 256 * 1024;

/// How long a link whose other side hung up may take to deliver the bytes
/// already read for it, and how long shutdown waits for all links.
constexpr auto linger = std::chrono::seconds{1};

/// How long accepting pauses when the process is out of file descriptors.
constexpr auto accept_pause = std::chrono::milliseconds{100};

/// How often deadlines are checked while a link has one.
constexpr auto tick = std::chrono::milliseconds{100};

/// How long the client behind a closed link stays known by the link's
/// loopback port: the middleman reports a refused TLS handshake just before
/// it closes its end, and the guard may see the close first.
constexpr auto remember_closed = std::chrono::seconds{10};

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

bool would_block() {
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

/// Bytes read from one socket that the other has not taken yet.
struct backlog {
  std::vector<char> bytes; // keeps its capacity: no allocation per message
  size_t offset = 0;

  bool empty() const {
    return offset == bytes.size();
  }
};

struct link;

/// What an epoll event points at: a socket of a link, or the guard's own.
struct endpoint {
  link* owner = nullptr; // null for the listening socket and the wake fd
  bool backend = false;
};

/// One client connection and its connection to the middleman.
struct link {
  int client = -1;
  int backend = -1;
  std::string peer;
  endpoint client_end{this, false};
  endpoint backend_end{this, true};
  uint32_t client_events = 0;
  uint32_t backend_events = 0;
  bool backend_connected = false;
  /// The local port of `backend`: how the middleman's reports name the link.
  uint16_t backend_port = 0;
  /// The first bytes passed as a BASP client handshake.
  bool vetted = false;
  /// One side hung up; the other gets what was read for it, then both close.
  bool closing = false;
  bool dead = false;
  clock::time_point deadline;
  uint8_t hello[basp_header_size];
  size_t hello_len = 0;
  backlog up; // client -> backend
  backlog down; // backend -> client
};

/// Refused TLS handshakes, from the middleman's thread to the guard's.
struct refusal_inbox {
  std::mutex mtx;
  std::vector<tls_refusal> refusals;
  int wake_fd = -1; // -1 once the guard is gone
};

uint16_t local_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return 0;
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
}

} // namespace

struct port_guard::relay {
  options opts;
  uint16_t port; // the bound public port (opts.port may be 0)
  int listen_fd = -1;
  int wake_fd = -1;
  int epoll_fd = -1;
  uint16_t backend_port = 0;
  std::atomic<bool> close_port{false};
  std::atomic<bool> stopping{false};
  /// Set once the listening socket is closed (or the loop ended).
  std::mutex port_mtx;
  std::condition_variable port_cv;
  bool port_closed = false;
  endpoint listen_end;
  endpoint wake_end;
  std::vector<std::unique_ptr<link>> links;
  clock::time_point accepting_again = clock::time_point::max();
  clock::time_point last_pause_warning;
  std::unique_ptr<char[]> chunk{new char[chunk_size]};
  rejection_log rejections;
  std::shared_ptr<refusal_inbox> inbox = std::make_shared<refusal_inbox>();
  /// A client by the loopback port of its link to the middleman.
  struct client_entry {
    std::string peer;
    /// Its first bytes passed: a TLS handshake failure is news. (The
    /// middleman also fails the handshakes of links the guard rejected and
    /// closed; those are logged already.)
    bool vetted = false;
    /// When the link closed (max while open).
    clock::time_point closed = clock::time_point::max();
  };
  std::map<uint16_t, client_entry> clients;

  relay(options o, uint16_t bound_port)
    : opts(std::move(o)), port(bound_port), rejections(port, opts.metrics) {}

  ~relay() {
    {
      std::lock_guard<std::mutex> lock{inbox->mtx};
      inbox->wake_fd = -1;
    }
    for (auto& l : links)
      close_link(*l);
    for (int fd : {listen_fd, wake_fd, epoll_fd})
      if (fd >= 0)
        close(fd);
  }

  void wake() {
    uint64_t one = 1;
    (void)!write(wake_fd, &one, sizeof(one));
  }

  void watch(int fd, endpoint* end, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = end;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
  }

  /// Reads a side only while nothing read from it waits for the other side;
  /// writes a side only while something waits for it.
  void update_interest(link& l) {
    uint32_t client = 0;
    uint32_t backend = 0;
    if (!l.closing) {
      if (l.up.empty())
        client |= EPOLLIN;
      if (l.backend_connected && l.down.empty())
        backend |= EPOLLIN;
    }
    if (!l.down.empty())
      client |= EPOLLOUT;
    if (!l.backend_connected || !l.up.empty())
      backend |= EPOLLOUT;
    auto apply = [&](int fd, endpoint* end, uint32_t want, uint32_t& have) {
      if (want == have)
        return;
      epoll_event ev{};
      ev.events = want;
      ev.data.ptr = end;
      epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev);
      have = want;
    };
    apply(l.client, &l.client_end, client, l.client_events);
    apply(l.backend, &l.backend_end, backend, l.backend_events);
  }

  void close_link(link& l) {
    if (l.dead)
      return;
    l.dead = true;
    if (auto at = clients.find(l.backend_port); at != clients.end())
      at->second.closed = clock::now();
    close(l.client);
    close(l.backend);
  }

  /// Sends `n` bytes to `fd` now if it takes them, keeps the rest in `out`.
  /// False when the socket failed.
  bool forward(int fd, bool ready, backlog& out, const char* data, size_t n) {
    size_t sent = 0;
    if (ready) {
      auto r = send(fd, data, n, MSG_NOSIGNAL);
      if (r < 0 && !would_block())
        return false;
      sent = r > 0 ? static_cast<size_t>(r) : 0;
    }
    out.bytes.assign(data + sent, data + n);
    out.offset = 0;
    return true;
  }

  /// Sends what waits in `out`. False when the socket failed.
  bool flush(int fd, backlog& out) {
    while (!out.empty()) {
      auto r = send(fd, out.bytes.data() + out.offset,
                    out.bytes.size() - out.offset, MSG_NOSIGNAL);
      if (r < 0)
        return would_block();
      out.offset += static_cast<size_t>(r);
    }
    return true;
  }

  /// A side hung up: deliver what was already read for the other side, then
  /// close both (BASP peers never half-close).
  void hang_up(link& l, clock::time_point now) {
    l.closing = true;
    l.deadline = now + linger;
    if (l.up.empty() && l.down.empty())
      close_link(l);
  }

  void accept_all(clock::time_point now) {
    for (;;) {
      sockaddr_storage addr{};
      socklen_t len = sizeof(addr);
      int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
            || errno == ENOMEM)
          pause_accepting(now, errno);
        return; // EAGAIN, or a client that reset before we accepted it
      }
      set_nodelay(fd);
      auto l = std::make_unique<link>();
      l->client = fd;
      l->peer = numeric_address(addr, len);
      l->deadline = now + opts.handshake_timeout;
      if (int err = connect_backend(*l); err != 0) {
        close(fd);
        if (err == EMFILE || err == ENFILE) {
          pause_accepting(now, err);
          return;
        }
        continue;
      }
      watch(l->client, &l->client_end, 0);
      watch(l->backend, &l->backend_end, 0);
      update_interest(*l);
      links.push_back(std::move(l));
    }
  }

  /// Out of file descriptors: the listening socket would stay readable and
  /// spin the loop, so it is left alone for a while (clients queue in the
  /// backlog meanwhile).
  void pause_accepting(clock::time_point now, int err) {
    epoll_event ev{};
    ev.data.ptr = &listen_end;
    epoll_ctl(epoll_fd, EPOLL_CTL_MOD, listen_fd, &ev);
    accepting_again = now + accept_pause;
    if (now - last_pause_warning >= std::chrono::seconds{10}) {
      last_pause_warning = now;
      VOLT_WARN("guard", "cannot accept on port "
                           << port << ": " << std::strerror(err) << " ("
                           << links.size()
                           << " connections open); pausing accepts");
    }
  }

  void resume_accepting(clock::time_point now) {
    if (accepting_again == clock::time_point::max() || now < accepting_again)
      return;
    accepting_again = clock::time_point::max();
    if (listen_fd < 0)
      return;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &listen_end;
    epoll_ctl(epoll_fd, EPOLL_CTL_MOD, listen_fd, &ev);
  }

  /// Starts the connection to the middleman (loopback: usually at once);
  /// the errno of a failure.
  int connect_backend(link& l) {
    l.backend = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l.backend < 0)
      return errno;
    set_nodelay(l.backend);
    auto remember = [&] {
      l.backend_port = local_port(l.backend);
      if (opts.tls && l.backend_port != 0)
        clients[l.backend_port] = client_entry{l.peer};
    };
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(backend_port);
    if (connect(l.backend, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
        == 0) {
      l.backend_connected = true;
      remember();
      return 0;
    }
    int err = errno;
    if (err == EINPROGRESS) {
      remember(); // the port is bound once connect starts
      return 0;
    }
    VOLT_WARN("guard", "cannot reach the middleman on 127.0.0.1:"
                         << backend_port << " for " << l.peer << ": "
                         << std::strerror(err));
    close(l.backend);
    return err;
  }

  std::string hint_for(const char* reason) const {
    if (std::strcmp(reason, "http") != 0)
      return "";
    if (opts.tls)
      return opts.metrics_port == 0
               ? "; this port speaks CAF's BASP over TLS, and [metrics] port "
                 "is off on this node"
               : "; this port speaks CAF's BASP over TLS, Prometheus metrics "
                 "are on [metrics] port "
                   + std::to_string(opts.metrics_port);
    if (opts.metrics_port == 0)
      return "; this port speaks CAF's BASP, and [metrics] port is off on "
             "this node";
    return "; this port speaks CAF's BASP, Prometheus metrics are on [metrics] "
           "port "
           + std::to_string(opts.metrics_port);
  }

  /// How many first bytes are judged before anything is relayed.
  size_t hello_size() const {
    return opts.tls ? tls_hello_size : basp_header_size;
  }

  /// Reads the client's first bytes (never past the header) and judges them.
  void read_hello(link& l, clock::time_point now) {
    auto n = read(l.client, l.hello + l.hello_len, hello_size() - l.hello_len);
    if (n < 0 && would_block())
      return;
    if (n <= 0) {
      if (l.hello_len == 0)
        rejections.empty(l.peer, now);
      else
        rejections.reject(l.peer, "closed_early",
                          "closed after sending " + std::to_string(l.hello_len)
                            + " of the " + std::to_string(hello_size())
                            + (opts.tls
                                 ? " bytes that start a TLS ClientHello: "
                                 : " bytes of a BASP header: ")
                            + render_bytes(l.hello, l.hello_len),
                          now);
      close_link(l);
      return;
    }
    l.hello_len += static_cast<size_t>(n);
    auto verdict = opts.tls ? basp_hello::judge_tls(l.hello, l.hello_len)
                            : basp_hello::judge(l.hello, l.hello_len);
    if (verdict.what == basp_hello::verdict::rejected) {
      rejections.reject(l.peer, verdict.reason,
                        verdict.detail + hint_for(verdict.reason)
                          + "; first bytes: "
                          + render_bytes(l.hello, l.hello_len),
                        now);
      close_link(l);
      return;
    }
    if (verdict.what == basp_hello::verdict::undecided)
      return;
    l.vetted = true;
    if (auto at = clients.find(l.backend_port); at != clients.end())
      at->second.vetted = true;
    if (!forward(l.backend, l.backend_connected, l.up,
                 reinterpret_cast<const char*>(l.hello), l.hello_len))
      close_link(l);
  }

  /// Moves one chunk from `from` to `to`.
  void pump(link& l, int from, int to, bool to_ready, backlog& out,
            clock::time_point now) {
    auto n = read(from, chunk.get(), chunk_size);
    if (n < 0 && would_block())
      return;
    if (n < 0) {
      close_link(l);
      return;
    }
    if (n == 0) {
      hang_up(l, now);
      return;
    }
    if (!forward(to, to_ready, out, chunk.get(), static_cast<size_t>(n)))
      close_link(l);
  }

  /// The middleman accepted (or refused) the connection.
  bool finish_connect(link& l) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(l.backend, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      VOLT_WARN("guard", "cannot reach the middleman on 127.0.0.1:"
                           << backend_port << " for " << l.peer << ": "
                           << std::strerror(err));
      return false;
    }
    l.backend_connected = true;
    return true;
  }

  void on_backend_event(link& l, uint32_t events, clock::time_point now) {
    if (!l.backend_connected && !finish_connect(l))
      return close_link(l);
    // Since we never shut a socket down, EPOLLHUP means a reset.
    if (events & (EPOLLERR | EPOLLHUP))
      return close_link(l);
    if ((events & EPOLLOUT) && !flush(l.backend, l.up))
      return close_link(l);
    if ((events & EPOLLIN) && !l.closing && l.down.empty())
      pump(l, l.backend, l.client, true, l.down, now);
  }

  void on_client_event(link& l, uint32_t events, clock::time_point now) {
    if (!l.vetted) {
      // Before the handshake every ending, a reset included, is judged.
      if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        read_hello(l, now);
    } else if (events & (EPOLLERR | EPOLLHUP)) {
      return close_link(l);
    } else if ((events & EPOLLIN) && !l.closing && l.up.empty()) {
      pump(l, l.client, l.backend, l.backend_connected, l.up, now);
    }
    if (!l.dead && (events & EPOLLOUT) && !flush(l.client, l.down))
      close_link(l);
  }

  void on_event(link& l, bool backend, uint32_t events, clock::time_point now) {
    if (l.dead)
      return;
    if (backend)
      on_backend_event(l, events, now);
    else
      on_client_event(l, events, now);
    if (l.dead)
      return;
    if (l.closing && l.up.empty() && l.down.empty())
      return close_link(l);
    update_interest(l);
  }

  /// Closes links past their deadline: silent clients, stuck flushes.
  void check_deadlines(clock::time_point now) {
    rejections.tick(now);
    resume_accepting(now);
    for (auto& l : links) {
      if (l->dead || now < l->deadline)
        continue;
      if (l->closing) {
        close_link(*l);
      } else if (!l->vetted) {
        std::string what
          = std::string{opts.tls ? "no TLS ClientHello" : "no BASP handshake"}
            + " within " + std::to_string(opts.handshake_timeout.count())
            + " ms";
        if (l->hello_len > 0)
          what += "; first bytes: " + render_bytes(l->hello, l->hello_len);
        else
          what += " (sent nothing)";
        rejections.reject(l->peer, "timeout", what, now);
        close_link(*l);
      }
    }
  }

  /// Logs the handshakes the middleman refused, under the client's address.
  void take_refusals(clock::time_point now) {
    std::vector<tls_refusal> refusals;
    {
      std::lock_guard<std::mutex> lock{inbox->mtx};
      refusals.swap(inbox->refusals);
    }
    for (auto& r : refusals) {
      auto at = clients.find(r.peer_port);
      if (at != clients.end() && !at->second.vetted)
        continue;
      // Not a link of ours: a local process that skipped the guard.
      auto peer = at != clients.end()
                    ? at->second.peer
                    : r.peer + " (on the middleman's loopback port)";
      rejections.reject(peer, "tls", "TLS handshake failed: " + r.reason, now);
    }
  }

  void forget_closed_clients(clock::time_point now) {
    for (auto at = clients.begin(); at != clients.end();) {
      auto closed = at->second.closed;
      if (closed != clock::time_point::max() && now - closed > remember_closed)
        at = clients.erase(at);
      else
        ++at;
    }
  }

  bool has_deadlines() const {
    if (rejections.summary_pending()
        || accepting_again != clock::time_point::max())
      return true;
    return std::any_of(links.begin(), links.end(),
                       [](auto& l) { return !l->vetted || l->closing; });
  }

  void close_listener() {
    if (listen_fd >= 0)
      close(listen_fd);
    listen_fd = -1;
    std::lock_guard<std::mutex> lock{port_mtx};
    port_closed = true;
    port_cv.notify_all();
  }

  void run() {
    loop();
    close_listener();
  }

  void loop() {
    watch(listen_fd, &listen_end, EPOLLIN);
    watch(wake_fd, &wake_end, EPOLLIN);
    epoll_event events[64];
    auto stop_by = clock::time_point::max();
    auto busy_until = clock::time_point::min();
    for (;;) {
      bool timed = has_deadlines() || stopping;
      int timeout = timed ? static_cast<int>(tick.count()) : -1;
      if (busy_until != clock::time_point::min() && clock::now() < busy_until)
        timeout = 0;
      int n = epoll_wait(epoll_fd, events, 64, timeout);
      if (n < 0 && errno != EINTR)
        return;
      auto now = clock::now();
      if (n > 0 && opts.busy_poll.count() > 0)
        busy_until = now + opts.busy_poll;
      for (int i = 0; i < n; ++i) {
        auto* end = static_cast<endpoint*>(events[i].data.ptr);
        if (end == &wake_end) {
          uint64_t count = 0;
          (void)!read(wake_fd, &count, sizeof(count));
          take_refusals(now);
        } else if (end == &listen_end) {
          accept_all(now);
        } else {
          on_event(*end->owner, end->backend, events[i].events, now);
        }
      }
      if ((close_port || stopping) && listen_fd >= 0)
        close_listener();
      // The actor system is gone by now and has closed its side of every
      // link: keep relaying until each link has delivered and closed.
      if (stopping && stop_by == clock::time_point::max())
        stop_by = now + linger;
      if (timed)
        check_deadlines(now);
      if (clients.size() > links.size())
        forget_closed_clients(now);
      links.erase(std::remove_if(links.begin(), links.end(),
                                 [](auto& l) { return l->dead; }),
                  links.end());
      if (stopping && (links.empty() || now >= stop_by))
        return;
    }
  }
};

caf::expected<std::unique_ptr<port_guard>> port_guard::listen(options opts) {
  auto bound = listen_tcp(opts.host, opts.port, SOCK_NONBLOCK);
  if (!bound)
    return bound.error();
  std::unique_ptr<port_guard> guard{new port_guard};
  guard->port_ = bound->port;
  guard->relay_ = std::make_unique<relay>(std::move(opts), bound->port);
  auto& r = *guard->relay_;
  r.listen_fd = bound->fd;
  r.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  r.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (r.wake_fd < 0 || r.epoll_fd < 0)
    return make_volt_error(volt_errc::internal, std::strerror(errno));
  return guard;
}

void port_guard::serve(uint16_t backend_port) {
  backend_port_ = backend_port;
  relay_->backend_port = backend_port;
  if (relay_->opts.tls) {
    {
      std::lock_guard<std::mutex> lock{relay_->inbox->mtx};
      relay_->inbox->wake_fd = relay_->wake_fd;
    }
    set_tls_refusal_sink([inbox = relay_->inbox](const tls_refusal& r) {
      std::lock_guard<std::mutex> lock{inbox->mtx};
      if (inbox->wake_fd < 0)
        return;
      inbox->refusals.push_back(r);
      uint64_t one = 1;
      (void)!write(inbox->wake_fd, &one, sizeof(one));
    });
  }
  thread_ = std::thread{[r = relay_.get()] { r->run(); }};
}

void port_guard::stop_accepting() {
  if (!thread_.joinable()) {
    relay_->close_listener();
    return;
  }
  relay_->close_port = true;
  relay_->wake();
  // Wait, so that nothing is accepted once this returns (e.g. while the actor
  // system shuts down and the middleman no longer answers).
  std::unique_lock<std::mutex> lock{relay_->port_mtx};
  relay_->port_cv.wait(lock, [this] { return relay_->port_closed; });
}

port_guard::~port_guard() {
  if (thread_.joinable()) {
    relay_->stopping = true;
    relay_->wake();
    thread_.join();
  }
}

} // namespace volt
