#pragma once

// The handlers of the API's routes. Each runs on an httplib thread and may
// block it (on the engine, or while it streams).

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "http/api_keys.hpp"
#include "http/connection_watch.hpp"
#include "http/engine_bridge.hpp"
#include "http/openai_request.hpp"
#include "http/served_model.hpp"
#include "net/metrics.hpp"

namespace httplib {
struct Request;
struct Response;
} // namespace httplib

namespace prometheus {
class Registry;
} // namespace prometheus

namespace volt::http {

/// What every handler shares.
struct api_context {
  std::shared_ptr<const served_model> model;
  std::shared_ptr<engine_bridge> bridge;
  /// May be null (no metrics).
  std::shared_ptr<node_metrics> metrics;
  /// Connections with a generation in flight (spared at shutdown).
  std::shared_ptr<busy_connections> busy;
  /// When the server started: the `created` time of the model.
  int64_t started = 0;
  /// [http] api_keys_file, or null when requests need no key.
  std::shared_ptr<api_keys> keys;
  /// Routes served without a key ([http] public_paths).
  std::vector<std::string> public_paths;
};

/// Answers `res` with `err` as OpenAI's error object.
void reply_error(httplib::Response& res, const api_error& err);

/// POST /v1/completions and /v1/chat/completions, streamed or not.
void serve_completion(const api_context& ctx, api_kind kind,
                      const httplib::Request& req, httplib::Response& res);

/// GET /v1/models, and GET /v1/models/{id} when `one` is set.
void serve_models(const api_context& ctx, const httplib::Request& req,
                  httplib::Response& res, bool one);

/// GET /health: 200 once the engine serves every expert, 503 before.
void serve_health(const api_context& ctx, httplib::Response& res);

/// POST /tokenize: {"prompt"} or {"messages"} to token ids.
void serve_tokenize(const api_context& ctx, const httplib::Request& req,
                    httplib::Response& res);

/// POST /detokenize: {"tokens"} to text.
void serve_detokenize(const api_context& ctx, const httplib::Request& req,
                      httplib::Response& res);

/// GET /metrics: the node's Prometheus text.
void serve_metrics(const api_context& ctx, httplib::Response& res);

} // namespace volt::http
