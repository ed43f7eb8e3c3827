#include "net/tls_files.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <utility>
#include <vector>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "base/error.hpp"

namespace volt {

namespace {

/// Frees an OpenSSL object with its own function, for unique_ptr.
template <auto Free>
struct openssl_free {
  template <class T>
  void operator()(T* x) const {
    Free(x);
  }
};

using bio_ptr = std::unique_ptr<BIO, openssl_free<BIO_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_free<X509_free>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_free<EVP_PKEY_free>>;

caf::error fail(const std::string& origin, const std::string& file,
                const std::string& what) {
  return make_volt_error(volt_errc::invalid_config,
                         origin + ": " + file + ": " + what);
}

/// The first OpenSSL error queued by the last call, and clears the queue.
std::string openssl_reason() {
  auto code = ERR_get_error();
  ERR_clear_error();
  if (code == 0)
    return "no details from OpenSSL";
  const char* reason = ERR_reason_error_string(code);
  return reason != nullptr ? reason : "OpenSSL error " + std::to_string(code);
}

caf::expected<std::string> read_whole(const std::string& origin,
                                      const std::string& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    return fail(origin, file, "cannot read (is a directory)");
  errno = 0;
  std::ifstream in{file, std::ios::binary};
  if (!in.is_open())
    return fail(origin, file,
                std::string{"cannot open ("}
                  + (errno != 0 ? std::strerror(errno) : "unknown reason")
                  + ")");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return fail(origin, file, "cannot read");
  if (text.str().empty())
    return fail(origin, file, "empty file (expected PEM text)");
  return text.str();
}

bio_ptr memory_bio(const std::string& bytes) {
  return bio_ptr{BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size()))};
}

/// Every certificate in PEM text, in order.
std::vector<x509_ptr> read_certificates(const std::string& pem) {
  std::vector<x509_ptr> result;
  auto bio = memory_bio(pem);
  while (auto* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
    result.emplace_back(cert);
  ERR_clear_error(); // the end of the text reads as an error
  return result;
}

std::string name_of(X509_NAME* name) {
  char buf[256];
  X509_NAME_oneline(name, buf, sizeof(buf));
  return buf;
}

std::string not_after(X509* cert) {
  bio_ptr bio{BIO_new(BIO_s_mem())};
  ASN1_TIME_print(bio.get(), X509_get0_notAfter(cert));
  char* data = nullptr;
  auto n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

/// Set when OpenSSL asks for a passphrase: the key is encrypted.
int refuse_passphrase(char*, int, int, void* asked) {
  *static_cast<bool*>(asked) = true;
  return -1;
}

/// "" when `leaf` (with `chain` after it) chains to `cas` for `purpose`, else
/// OpenSSL's reason.
std::string verify(X509* leaf, const std::vector<x509_ptr>& chain,
                   const std::vector<x509_ptr>& cas, int purpose) {
  std::unique_ptr<X509_STORE, openssl_free<X509_STORE_free>> store{
    X509_STORE_new()};
  for (const auto& ca : cas)
    X509_STORE_add_cert(store.get(), ca.get());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (size_t i = 1; i < chain.size(); ++i)
    sk_X509_push(untrusted, chain[i].get());
  std::unique_ptr<X509_STORE_CTX, openssl_free<X509_STORE_CTX_free>> ctx{
    X509_STORE_CTX_new()};
  std::string problem;
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted) != 1) {
    problem = openssl_reason();
  } else {
    X509_STORE_CTX_set_purpose(ctx.get(), purpose);
    if (X509_verify_cert(ctx.get()) != 1)
      problem
        = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
  }
  sk_X509_free(untrusted);
  ERR_clear_error();
  return problem;
}

/// A private in-memory copy of `bytes` that OpenSSL can open by path; -1
/// when the kernel has no memfd (then the original file is used).
int memory_file(const char* name, const std::string& bytes) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0)
    return -1;
  size_t done = 0;
  while (done < bytes.size()) {
    auto n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      close(fd);
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  return fd;
}

} // namespace

caf::expected<tls_files> tls_files::load(const tls_paths& paths) {
  auto cert_pem = read_whole(paths.cert_origin, paths.cert);
  if (!cert_pem)
    return std::move(cert_pem.error());
  auto key_pem = read_whole(paths.key_origin, paths.key);
  if (!key_pem)
    return std::move(key_pem.error());
  auto ca_pem = read_whole(paths.ca_origin, paths.ca);
  if (!ca_pem)
    return std::move(ca_pem.error());
  auto chain = read_certificates(*cert_pem);
  if (chain.empty())
    return fail(paths.cert_origin, paths.cert,
                "no PEM certificate in it (expected \"-----BEGIN "
                "CERTIFICATE-----\")");
  auto cas = read_certificates(*ca_pem);
  if (cas.empty())
    return fail(paths.ca_origin, paths.ca,
                "no PEM certificate in it (expected \"-----BEGIN "
                "CERTIFICATE-----\")");
  bool asked = false;
  auto key_bio = memory_bio(*key_pem);
  pkey_ptr key{
    PEM_read_bio_PrivateKey(key_bio.get(), nullptr, refuse_passphrase, &asked)};
  if (!key) {
    auto reason = openssl_reason();
    if (asked)
      return fail(paths.key_origin, paths.key,
                  "the key is encrypted; Volt reads unencrypted PEM keys "
                  "(protect the file with its permissions instead)");
    return fail(paths.key_origin, paths.key,
                "not a PEM private key (" + reason + ")");
  }
  X509* leaf = chain.front().get();
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return fail(paths.key_origin, paths.key,
                "does not belong to the certificate in " + paths.cert + " ("
                  + paths.cert_origin + ")");
  }
  // Every node is a TLS server for its peers and a client of the nodes it
  // connects to, so its certificate must pass as both.
  for (auto [purpose, role] :
       {std::pair<int, const char*>{X509_PURPOSE_SSL_SERVER, "server"},
        {X509_PURPOSE_SSL_CLIENT, "client"}}) {
    auto problem = verify(leaf, chain, cas, purpose);
    if (!problem.empty())
      return fail(paths.cert_origin, paths.cert,
                  "does not verify against the CA in " + paths.ca + " ("
                    + paths.ca_origin + ") as a TLS " + role + ": " + problem);
  }
  tls_files result;
  result.summary_ = "certificate " + name_of(X509_get_subject_name(leaf))
                    + " (valid until " + not_after(leaf) + "), CA "
                    + name_of(X509_get_subject_name(cas.front().get()));
  const std::pair<const char*, const std::string*> sources[]
    = {{"volt-tls-cert", &*cert_pem},
       {"volt-tls-key", &*key_pem},
       {"volt-tls-ca", &*ca_pem}};
  const std::string* originals[] = {&paths.cert, &paths.key, &paths.ca};
  std::string* targets[] = {&result.cert_path_, &result.key_path_,
                            &result.ca_path_};
  for (size_t i = 0; i < 3; ++i) {
    result.fds_[i] = memory_file(sources[i].first, *sources[i].second);
    *targets[i] = result.fds_[i] >= 0
                    ? "/proc/self/fd/" + std::to_string(result.fds_[i])
                    : *originals[i];
  }
  return result;
}

tls_files::tls_files(tls_files&& other) noexcept {
  *this = std::move(other);
}

tls_files& tls_files::operator=(tls_files&& other) noexcept {
  if (this != &other) {
    for (int i = 0; i < 3; ++i)
      std::swap(fds_[i], other.fds_[i]);
    cert_path_ = std::move(other.cert_path_);
    key_path_ = std::move(other.key_path_);
    ca_path_ = std::move(other.ca_path_);
    summary_ = std::move(other.summary_);
  }
  return *this;
}

tls_files::~tls_files() {
  for (int fd : fds_)
    if (fd >= 0)
      close(fd);
}

} // namespace volt
