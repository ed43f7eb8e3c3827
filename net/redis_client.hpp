#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "caf/expected.hpp"
#include "config/endpoint.hpp"

struct redisContext;

namespace volt {

/// A blocking connection to Redis (hiredis) with a timeout on every call. Used
/// from detached actors only, which own their thread. Any error leaves the
/// client unusable; callers reconnect.
class redis_client {
public:
  /// Connects to `target` within `timeout`, then sends AUTH and SELECT when
  /// it names credentials and a database; errors name the address, never
  /// the password.
  static caf::expected<redis_client> connect(const redis_target& target,
                                             std::chrono::milliseconds timeout);

  redis_client(redis_client&&) noexcept = default;
  redis_client& operator=(redis_client&&) noexcept = default;
  ~redis_client();

  /// SET key value PX ttl.
  caf::error set(const std::string& key, const std::string& value,
                 std::chrono::milliseconds ttl);

  /// DEL key.
  caf::error del(const std::string& key);

  /// PUBLISH channel message.
  caf::error publish(const std::string& channel, const std::string& message);

  /// Every key matching `pattern` with its value (SCAN, then GET each; keys
  /// that expire in between are skipped).
  caf::expected<std::vector<std::pair<std::string, std::string>>>
  entries(const std::string& pattern);

private:
  struct context_deleter {
    void operator()(redisContext* ctx) const;
  };

  redis_client() = default;

  /// Runs one command; returns its reply as text ("" for nil) or an error.
  caf::expected<std::string> command(const std::vector<std::string>& argv);

  std::unique_ptr<redisContext, context_deleter> ctx_;
  std::string address_;
};

} // namespace volt
