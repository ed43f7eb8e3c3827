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

/// Decodes "%XX" escapes; nothing for a malformed escape.
std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size())
      return std::nullopt;
    auto hex = [](char c) {
      return std::isdigit(static_cast<unsigned char>(c))
               ? c - '0'
               : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
    };
    auto hi = text[i + 1];
    auto lo = text[i + 2];
    if (!std::isxdigit(static_cast<unsigned char>(hi))
        || !std::isxdigit(static_cast<unsigned char>(lo)))
      return std::nullopt;
    out += static_cast<char>(hex(hi) * 16 + hex(lo));
    i += 2;
  }
  return out;
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

std::string bracket_host(std::string_view host) {
  if (host.find(':') == std::string_view::npos)
    return std::string{host};
  return "[" + std::string{host} + "]";
}

std::string render_endpoint(std::string_view host, uint16_t port) {
  return bracket_host(host) + ":" + std::to_string(port);
}

constexpr std::string_view redis_scheme = "redis://";

std::optional<redis_target> parse_redis_url(std::string_view text) {
  if (text.substr(0, redis_scheme.size()) != redis_scheme)
    return std::nullopt;
  auto rest = text.substr(redis_scheme.size());
  redis_target result;
  // The credentials end at the last '@': a password may hold '@' and '/'.
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    auto userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = userinfo.find(':');
    if (colon == std::string_view::npos)
      return std::nullopt;
    auto user = percent_decode(userinfo.substr(0, colon));
    auto password = percent_decode(userinfo.substr(colon + 1));
    if (!user || !password || password->empty())
      return std::nullopt;
    result.user = std::move(*user);
    result.password = std::move(*password);
  }
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    auto db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      auto index = parse_digits(db, std::numeric_limits<int32_t>::max());
      if (!index)
        return std::nullopt;
      result.database = *index;
    }
  }
  auto server = split_host_port(rest, false, default_redis_port);
  if (!server)
    return std::nullopt;
  result.server = std::move(*server);
  return result;
}

std::string redact_redis_url(std::string_view url) {
  auto at = url.rfind('@');
  auto scheme_end = url.find("://");
  if (at == std::string_view::npos || scheme_end == std::string_view::npos
      || at < scheme_end)
    return std::string{url};
  return std::string{url.substr(0, scheme_end + 3)} + "***"
         + std::string{url.substr(at)};
}

std::string render_redis_target(const redis_target& target) {
  return render_endpoint(target.server.host, target.server.port) + "/"
         + std::to_string(target.database);
}

std::optional<http_url> parse_http_url(std::string_view text) {
  http_url result;
  for (auto [scheme, port] :
       {std::pair<std::string_view, uint16_t>{"http", 80}, {"https", 443}}) {
    auto prefix = std::string{scheme} + "://";
    if (text.substr(0, prefix.size()) != prefix)
      continue;
    auto rest = text.substr(prefix.size());
    auto slash = rest.find('/');
    auto authority = rest.substr(0, slash);
    if (authority.find('@') != std::string_view::npos
        || text.find('#') != std::string_view::npos)
      return std::nullopt;
    auto server = split_host_port(authority, false, port);
    if (!server)
      return std::nullopt;
    for (auto c : rest)
      if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
        return std::nullopt;
    result.scheme = std::string{scheme};
    result.server = std::move(*server);
    result.path = slash == std::string_view::npos
                    ? std::string{"/"}
                    : std::string{rest.substr(slash)};
    return result;
  }
  return std::nullopt;
}

std::string render_http_origin(const http_url& url) {
  return url.scheme + "://" + render_endpoint(url.server.host, url.server.port);
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
