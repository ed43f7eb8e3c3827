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

/// Port of a redis_url without one.
constexpr uint16_t default_redis_port = 6379;

/// Parses "redis://host[:port]"; the port defaults to 6379.
std::optional<endpoint> parse_redis_url(std::string_view text);

/// Parses a device string: -1 for "cpu", N for "cuda:N", nothing for anything
/// else.
std::optional<int> parse_device(std::string_view text);

} // namespace volt
