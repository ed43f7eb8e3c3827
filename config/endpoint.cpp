#include "config/endpoint.hpp"

#include <cctype>
#include <limits>

namespace volt {

namespace {

/// Parses a non-empty run of decimal digits no larger than `max`; signs and
/// spaces are rejected so that "cuda:-1" or "host: 80" never slip through.
std::optional<int64_t> parse_digits(std::string_view text, int64_t max) {
  if (text.empty())
    return std::nullopt;
  int64_t result = 0;
  for (auto c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    result = result * 10 + (c - '0');
    if (result > max)
      return std::nullopt;
  }
  return result;
}

/// Accepts a host name or IPv4 address, or (`ipv6`) the text between brackets.
bool valid_host(std::string_view host, bool ipv6) {
  if (host.empty())
    return false;
  for (auto c : host) {
    auto ok = ipv6 ? (std::isxdigit(static_cast<unsigned char>(c)) || c == ':'
                      || c == '.')
                   : (std::isalnum(static_cast<unsigned char>(c)) || c == '.'
                      || c == '-' || c == '_');
    if (!ok)
      return false;
  }
  return true;
}

/// Splits "host[:port]" and "[v6]:port"; `port_required` decides whether
/// ":port" may be left out.
std::optional<endpoint> split_host_port(std::string_view text,
                                        bool port_required,
                                        uint16_t default_port) {
  std::string_view host;
  std::string_view rest;
  bool ipv6 = !text.empty() && text.front() == '[';
  if (ipv6) {
    auto close = text.find(']');
    if (close == std::string_view::npos)
      return std::nullopt;
    host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
  } else {
    auto colon = text.find(':');
    host = text.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{}
                                           : text.substr(colon);
  }
  if (!valid_host(host, ipv6))
    return std::nullopt;
  endpoint result{std::string{host}, default_port};
  if (rest.empty())
    return port_required ? std::nullopt : std::optional<endpoint>{result};
  if (rest.front() != ':')
    return std::nullopt;
  auto port = parse_digits(rest.substr(1), 65535);
  if (!port || *port == 0)
    return std::nullopt;
  result.port = static_cast<uint16_t>(*port);
  return result;
}

} // namespace

std::optional<endpoint> parse_endpoint(std::string_view text) {
  return split_host_port(text, true, 0);
}

std::optional<endpoint> parse_redis_url(std::string_view text) {
  constexpr std::string_view scheme = "redis://";
  if (text.substr(0, scheme.size()) != scheme)
    return std::nullopt;
  return split_host_port(text.substr(scheme.size()), false, default_redis_port);
}

std::optional<int> parse_device(std::string_view text) {
  if (text == "cpu")
    return -1;
  constexpr std::string_view prefix = "cuda:";
  if (text.substr(0, prefix.size()) != prefix)
    return std::nullopt;
  auto index = parse_digits(text.substr(prefix.size()),
                            std::numeric_limits<int>::max());
  if (!index)
    return std::nullopt;
  return static_cast<int>(*index);
}

} // namespace volt
