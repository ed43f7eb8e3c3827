#include "net/tls_watch.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <mutex>
#include <vector>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base/log.hpp"
#include "base/log_throttle.hpp"
#include "net/tcp_listen.hpp"

namespace volt {

namespace {

using clock = std::chrono::steady_clock;

/// TLS 1.3's "certificate_required", which OpenSSL 3.0 names "unknown".
constexpr int alert_certificate_required = 116;

struct failure_record {
  uint16_t port;
  clock::time_point at;
  std::string reason;
};

struct watch_state {
  std::mutex mtx;
  std::function<void(const tls_refusal&)> sink;
  /// The latest failures of connections this process opened.
  std::vector<failure_record> opened;
  per_key_log_throttle client_lines{std::chrono::minutes{1}};
};

watch_state& state() {
  static watch_state instance;
  return instance;
}

std::string alert_text(int ret) {
  if ((ret & 0xff) == alert_certificate_required)
    return "certificate required";
  return SSL_alert_desc_string_long(ret);
}

/// A fatal alert about certificates can come after a TLS 1.3 client has
/// finished its side of the handshake (the server judges the client's
/// certificate last); other alerts after that are a link ending, not a
/// refusal.
bool about_certificates(int ret) {
  switch (ret & 0xff) {
    case SSL_AD_HANDSHAKE_FAILURE:
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
    case alert_certificate_required: return true;
    default: return false;
  }
}

std::string reason_of(const SSL* ssl, bool accepted, bool we_sent, int ret) {
  auto verified = SSL_get_verify_result(ssl);
  if (we_sent && verified != X509_V_OK)
    return std::string{accepted ? "its certificate" : "the node's certificate"}
           + " does not verify against tls_ca: "
           + X509_verify_cert_error_string(verified);
  if (we_sent && accepted && (ret & 0xff) == alert_certificate_required)
    return "it sent no certificate";
  if (we_sent)
    return "handshake refused (TLS alert '" + alert_text(ret) + "')";
  if ((ret & 0xff) == alert_certificate_required)
    return "the other side wants a certificate and got none";
  return std::string{accepted ? "it" : "the node"}
         + " refused this side's certificate or handshake (TLS alert '"
         + alert_text(ret) + "'; do both sides use the same tls_ca?)";
}

void on_refusal(tls_refusal refusal) {
  auto& st = state();
  if (refusal.accepted) {
    std::function<void(const tls_refusal&)> sink;
    {
      std::lock_guard<std::mutex> lock{st.mtx};
      sink = st.sink;
    }
    if (sink)
      sink(refusal);
    return;
  }
  auto now = clock::now();
  {
    std::lock_guard<std::mutex> lock{st.mtx};
    if (st.opened.size() >= 64)
      st.opened.erase(st.opened.begin());
    st.opened.push_back({refusal.peer_port, now, refusal.reason});
  }
  // Info, not a warning: whoever opened the link reports its failure in its
  // own words (a router's discovery warns and retries, a client exits with
  // an error that includes this reason).
  if (st.client_lines.pass(refusal.peer + refusal.reason, now))
    VOLT_INFO("tls", "TLS handshake with " << refusal.peer
                                           << " failed: " << refusal.reason
                                           << " (logged once a minute)");
  st.client_lines.expired(now);
}

/// What this watch keeps per TLS session: the peer, read while the socket is
/// surely connected (a peer that sends an alert and resets is gone from the
/// socket by the time the alert is seen), and whether the handshake finished
/// (OpenSSL's own state reads "in init" again once a session failed).
struct session_note {
  std::string peer;
  uint16_t peer_port = 0;
  bool done = false;
};

void free_note(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<session_note*>(ptr);
}

int note_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr,
                                                free_note);
  return index;
}

/// Empties this thread's OpenSSL error queue before each socket read and
/// write of a session. OpenSSL asks for an empty queue before every I/O call,
/// because SSL_get_error looks at the queue first; CAF drains it only inside
/// log statements, which Debian's build compiles out. Without this, the error
/// of one failed connection (a peer that died, a refused certificate) stays
/// queued, and the next read on any other connection of the middleman's
/// thread that merely has no data yet counts as failed: one bad peer would cut
/// every other link.
long clear_errors_before_io(BIO*, int oper, const char*, size_t, int, long,
                            int ret, size_t*) {
  if (oper == BIO_CB_READ || oper == BIO_CB_WRITE) {
    ERR_clear_error();
    return 1; // go ahead with the operation
  }
  return ret; // after an operation: its result unchanged
}

session_note& note_of(const SSL* const_ssl) {
  // OpenSSL passes the session as const to info callbacks only.
  auto* ssl = const_cast<SSL*>(const_ssl);
  if (auto* note
      = static_cast<session_note*>(SSL_get_ex_data(ssl, note_index())))
    return *note;
  auto* note = new session_note;
  SSL_set_ex_data(ssl, note_index(), note);
  // The first callback comes as the handshake starts: the socket is set and
  // nothing was read or written yet.
  for (BIO* bio : {SSL_get_rbio(ssl), SSL_get_wbio(ssl)})
    if (bio != nullptr)
      BIO_set_callback_ex(bio, clear_errors_before_io);
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  int fd = SSL_get_fd(ssl);
  if (fd >= 0
      && getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    note->peer = numeric_address(addr, len);
    if (addr.ss_family == AF_INET)
      note->peer_port
        = ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
    else if (addr.ss_family == AF_INET6)
      note->peer_port
        = ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  } else {
    note->peer = "an unknown peer";
  }
  return *note;
}

void on_info(const SSL* ssl, int where, int ret) {
  auto& note = note_of(ssl);
  if ((where & SSL_CB_HANDSHAKE_DONE) != 0) {
    note.done = true;
    return;
  }
  if ((where & SSL_CB_ALERT) == 0 || (ret >> 8) != SSL3_AL_FATAL)
    return;
  bool we_sent = (where & SSL_CB_WRITE) != 0;
  if (note.done && (we_sent || !about_certificates(ret)))
    return;
  tls_refusal refusal;
  refusal.accepted = SSL_is_server(ssl) != 0;
  refusal.peer = note.peer;
  refusal.peer_port = note.peer_port;
  refusal.reason = reason_of(ssl, refusal.accepted, we_sent, ret);
  on_refusal(std::move(refusal));
}

void on_new_context(void* parent, void*, CRYPTO_EX_DATA*, int, long, void*) {
  // CAF never sets an info callback of its own, so this one stays.
  if (parent != nullptr)
    SSL_CTX_set_info_callback(static_cast<SSL_CTX*>(parent), on_info);
}

} // namespace

void watch_tls_handshakes() {
  note_index();
  static const int index = CRYPTO_get_ex_new_index(
    CRYPTO_EX_INDEX_SSL_CTX, 0, nullptr, on_new_context, nullptr, nullptr);
  static_cast<void>(index);
}

void set_tls_refusal_sink(std::function<void(const tls_refusal&)> sink) {
  auto& st = state();
  std::lock_guard<std::mutex> lock{st.mtx};
  st.sink = std::move(sink);
}

std::optional<std::string> tls_failure_towards(uint16_t port,
                                               clock::time_point since) {
  auto& st = state();
  std::lock_guard<std::mutex> lock{st.mtx};
  for (auto at = st.opened.rbegin(); at != st.opened.rend(); ++at)
    if (at->port == port && at->at >= since)
      return at->reason;
  return std::nullopt;
}

} // namespace volt
