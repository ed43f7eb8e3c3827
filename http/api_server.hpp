#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/type_ids.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"
#include "http/api_keys.hpp"
#include "http/served_model.hpp"
#include "net/metrics.hpp"

namespace volt::http {

/// How the API listens and guards its threads.
struct api_options {
  std::string host = "127.0.0.1";
  /// 0 picks a free port (tests); port() tells which.
  uint16_t port = 0;
  /// Connection threads: each open connection holds one for its lifetime.
  size_t threads = 64;
  /// Read, write and keep-alive idle timeout in seconds.
  int64_t timeout_s = 10;
  size_t max_body_bytes = size_t{8} << 20;
  /// With keys, every request needs `Authorization: Bearer <key>` except
  /// those to `public_paths`; null serves everyone.
  std::shared_ptr<api_keys> keys;
  std::vector<std::string> public_paths;
};

/// The OpenAI-compatible HTTP API of a node: cpp-httplib's server on a
/// thread pool of its own, bridging to the engine actor.
class api_server {
public:
  /// Binds host:port (an invalid_config error naming [http] port when it
  /// cannot) and starts serving. `metrics` may be null.
  static caf::expected<std::unique_ptr<api_server>>
  start(caf::actor_system& sys, engine_actor engine,
        std::shared_ptr<const served_model> model,
        std::shared_ptr<node_metrics> metrics, api_options options);

  /// Stops accepting and waits for the requests in flight.
  ~api_server();

  /// Closes the listening socket and the idle connections, lets every
  /// generation in flight finish (streams included) and joins the threads.
  /// Idempotent.
  void stop();

  /// Calls `fn` once the API serves completions (the engine answered that
  /// every expert has a live host); see engine_bridge::when_ready.
  void when_ready(std::function<void()> fn);

  uint16_t port() const {
    return port_;
  }

private:
  struct impl;

  explicit api_server(std::unique_ptr<impl> state);

  std::unique_ptr<impl> impl_;
  uint16_t port_ = 0;
};

} // namespace volt::http
