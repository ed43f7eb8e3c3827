#pragma once

#include <string>

#include "caf/expected.hpp"

namespace volt {

/// The three files of mutual TLS and where each was named, for messages:
/// e.g. "node.toml: [security] tls_cert", "--tls-cert" or
/// "environment: VOLT_SECURITY_TLS_CERT".
struct tls_paths {
  std::string cert;
  std::string key;
  std::string ca;
  std::string cert_origin = "[security] tls_cert";
  std::string key_origin = "[security] tls_key";
  std::string ca_origin = "[security] tls_ca";
};

/// The TLS files of a node or client, checked and held in memory.
///
/// `load` reads each file once and checks, with OpenSSL, what a peer would
/// find wrong only later: that the certificate and the CA parse, that the key
/// is unencrypted and belongs to the certificate, and that the certificate
/// chains to the CA and is valid now. CAF's OpenSSL module opens the files
/// again for every connection, and a file it cannot load then ends the process
/// (it throws on the middleman's thread), so CAF gets private in-memory copies
/// (memfd, named /proc/self/fd/N) instead: a file deleted or rewritten while
/// the node runs changes nothing until a restart.
class tls_files {
public:
  /// Errors are volt_errc::invalid_config, one line naming the origin, the
  /// file and what is wrong.
  static caf::expected<tls_files> load(const tls_paths& paths);

  tls_files(tls_files&& other) noexcept;
  tls_files& operator=(tls_files&& other) noexcept;
  tls_files(const tls_files&) = delete;
  tls_files& operator=(const tls_files&) = delete;
  ~tls_files();

  /// Paths CAF's `openssl.certificate`, `openssl.key` and `openssl.cafile`
  /// take; valid while this object lives.
  const std::string& certificate_path() const {
    return cert_path_;
  }
  const std::string& key_path() const {
    return key_path_;
  }
  const std::string& ca_path() const {
    return ca_path_;
  }

  /// For the start log: whose certificate, valid until when, signed by whom.
  const std::string& summary() const {
    return summary_;
  }

private:
  tls_files() = default;

  int fds_[3] = {-1, -1, -1};
  std::string cert_path_;
  std::string key_path_;
  std::string ca_path_;
  std::string summary_;
};

} // namespace volt
