#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

// Parsers for the address-like strings of the configuration. The config
// validator uses them to reject bad values up front; net/ and gpu/ use them to
// read the values it accepted.

namespace volt {

/// A TCP endpoint: host name or address (IPv6 without brackets) and port.
struct endpoint {
  std::string host;
  uint16_t port = 0;
};

/// Parses "host:port" with port 1..65535; IPv6 hosts go in brackets, e.g.
/// "[::1]:7001".
std::optional<endpoint> parse_endpoint(std::string_view text);

/// `host` as it goes before ":port": IPv6 addresses in brackets ("[::1]"),
/// anything else unchanged.
std::string bracket_host(std::string_view host);

/// "host:port" as parse_endpoint reads it back: "10.0.0.5:7001",
/// "[::1]:7001".
std::string render_endpoint(std::string_view host, uint16_t port);

/// Port of a redis_url without one.
constexpr uint16_t default_redis_port = 6379;

/// Where and how to reach Redis: a parsed redis_url.
struct redis_target {
  endpoint server;
  /// Credentials for AUTH, which is sent only when `password` is set; an
  /// empty `user` authenticates as Redis' default user.
  std::string user;
  std::string password;
  /// Database index for SELECT; 0, Redis' default, sends none.
  int64_t database = 0;
};

/// Parses "redis://[[user]:password@]host[:port][/db]": port 6379 and
/// database 0 when left out; user and password may be percent-encoded.
std::optional<redis_target> parse_redis_url(std::string_view text);

/// `url` with the part before '@' (the credentials) shown as "***", for
/// messages and logs.
std::string redact_redis_url(std::string_view url);

/// "host:port/db" of `target`, without its credentials, for messages.
std::string render_redis_target(const redis_target& target);

/// A parsed http:// or https:// URL.
struct http_url {
  /// "http" or "https".
  std::string scheme;
  /// Host and port (80 or 443 when left out).
  endpoint server;
  /// Path and query, "/" when left out.
  std::string path;
};

/// Parses "http[s]://host[:port][/path]"; IPv6 hosts go in brackets. URLs with
/// credentials ("user@host") or a fragment are refused.
std::optional<http_url> parse_http_url(std::string_view text);

/// "scheme://host:port" of `url`, without the path (which may carry a
/// secret token), for messages and logs.
std::string render_http_origin(const http_url& url);

/// Parses a device string: -1 for "cpu", N for "cuda:N", nothing for anything
/// else.
std::optional<int> parse_device(std::string_view text);

} // namespace volt
