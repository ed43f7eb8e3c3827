#include "http/api_server.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include <httplib.h>
#include <unistd.h>

#include "base/error.hpp"
#include "base/log.hpp"
#include "http/endpoints.hpp"
#include "net/tcp_listen.hpp"

namespace volt::http {

namespace {

/// Routes, for the `endpoint` label of the request counter: anything else
/// counts as "other", so that scanners cannot grow the series.
const std::vector<std::string> known_paths
  = {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health",
     "/tokenize",       "/detokenize",          "/metrics"};

std::string endpoint_label(const std::string& path) {
  for (const auto& known : known_paths)
    if (path == known)
      return known;
  if (path.rfind("/v1/models/", 0) == 0)
    return "/v1/models/{id}";
  return "other";
}

/// Gives a response that has no body yet (httplib's own 400, 404, 413)
/// OpenAI's error object.
void fill_error(const httplib::Request& req, httplib::Response& res) {
  if (!res.body.empty())
    return;
  std::string message;
  switch (res.status) {
    case 404:
      message = "no route " + req.method + " " + req.path
                + "; this node serves POST /v1/completions, POST "
                  "/v1/chat/completions, GET /v1/models, GET /health, POST "
                  "/tokenize, POST /detokenize and GET /metrics";
      break;
    case 413: message = "request body too large ([http] max_body_mib)"; break;
    default: message = "bad HTTP request"; break;
  }
  reply_error(res, {res.status, message, "invalid_request_error", {},
                    res.status == 404 ? "not_found" : std::string{}});
}

/// Answers 401 unless the request may pass: no keys are set, its route is
/// public, or it carries an accepted key. Runs inside the route handlers,
/// after httplib has read the body, so that a refused request leaves the
/// keep-alive connection in step.
bool refused(const api_context& ctx, const httplib::Request& req,
             httplib::Response& res) {
  if (!ctx.keys
      || std::find(ctx.public_paths.begin(), ctx.public_paths.end(), req.path)
           != ctx.public_paths.end())
    return false;
  auto refusal = authorize(*ctx.keys, req.get_header_value("Authorization"));
  if (!refusal)
    return false;
  res.set_header("WWW-Authenticate", "Bearer");
  reply_error(res, *refusal);
  return true;
}

/// `handler` behind the API key check.
template <class Handler>
httplib::Server::Handler guarded(const api_context* ctx, Handler handler) {
  return [ctx, handler](const httplib::Request& req, httplib::Response& res) {
    if (!refused(*ctx, req, res))
      handler(req, res);
  };
}

} // namespace

struct api_server::impl {
  httplib::Server server;
  api_context ctx;
  std::thread thread;
};

api_server::api_server(std::unique_ptr<impl> state)
  : impl_(std::move(state)) {}

caf::expected<std::unique_ptr<api_server>>
api_server::start(caf::actor_system& sys, engine_actor engine,
                  std::shared_ptr<const served_model> model,
                  std::shared_ptr<node_metrics> metrics, api_options options) {
  auto state = std::make_unique<impl>();
  auto& ctx = state->ctx;
  ctx.model = std::move(model);
  ctx.bridge = std::make_shared<engine_bridge>(sys, std::move(engine));
  ctx.metrics = std::move(metrics);
  ctx.busy = std::make_shared<busy_connections>();
  ctx.keys = std::move(options.keys);
  ctx.public_paths = std::move(options.public_paths);
  ctx.started = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  auto& svr = state->server;
  // Each connection holds a thread for its whole life (keep-alive idling
  // and slow clients included), so the pool is sized for connections, not
  // for cores; beyond it, connections wait in the pool's queue.
  auto threads = options.threads;
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  svr.set_read_timeout(options.timeout_s, 0);
  svr.set_write_timeout(options.timeout_s, 0);
  svr.set_keep_alive_timeout(options.timeout_s);
  svr.set_keep_alive_max_count(1000);
  svr.set_payload_max_length(options.max_body_bytes);
  // Streamed tokens are small writes: Nagle's algorithm would hold each
  // until the previous one is acknowledged.
  svr.set_tcp_nodelay(true);
  const auto* c = &ctx;
  svr.Post("/v1/completions",
           guarded(c, [c](const httplib::Request& req, httplib::Response& res) {
             serve_completion(*c, api_kind::completion, req, res);
           }));
  svr.Post("/v1/chat/completions",
           guarded(c, [c](const httplib::Request& req, httplib::Response& res) {
             serve_completion(*c, api_kind::chat, req, res);
           }));
  svr.Get("/v1/models",
          guarded(c, [c](const httplib::Request& req, httplib::Response& res) {
            serve_models(*c, req, res, false);
          }));
  svr.Get("/v1/models/(.+)",
          guarded(c, [c](const httplib::Request& req, httplib::Response& res) {
            serve_models(*c, req, res, true);
          }));
  svr.Get("/health",
          guarded(c, [c](const httplib::Request&, httplib::Response& res) {
            serve_health(*c, res);
          }));
  svr.Post("/tokenize",
           guarded(c, [c](const httplib::Request& req, httplib::Response& res) {
             serve_tokenize(*c, req, res);
           }));
  svr.Post("/detokenize",
           guarded(c, [c](const httplib::Request& req, httplib::Response& res) {
             serve_detokenize(*c, req, res);
           }));
  svr.Get("/metrics",
          guarded(c, [c](const httplib::Request&, httplib::Response& res) {
            serve_metrics(*c, res);
          }));
  // The same paths with the other method: 405 rather than "no route" (to a
  // client with a key: the others learn nothing about the routes).
  auto wrong_method = guarded(c, [](const httplib::Request& req,
                                    httplib::Response& res) {
    reply_error(res, {405, req.method + " " + req.path + " is not allowed",
                      "invalid_request_error", {}, "method_not_allowed"});
  });
  for (auto path : {"/v1/completions", "/v1/chat/completions", "/tokenize",
                    "/detokenize"})
    svr.Get(path, wrong_method);
  for (auto path : {"/v1/models", "/health", "/metrics"})
    svr.Post(path, wrong_method);
  // An unknown route asked without a key gets 401 too, not the list of
  // routes.
  svr.set_error_handler([c](const httplib::Request& req,
                            httplib::Response& res) {
    if (res.status == 404 && refused(*c, req, res))
      return;
    fill_error(req, res);
  });
  svr.set_exception_handler(
    [](const httplib::Request& req, httplib::Response& res,
       std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      VOLT_ERROR("http", req.method << " " << req.path << ": " << what);
      reply_error(res, {500, "internal error: " + what, "server_error", {}, {}});
    });
  svr.set_logger([c](const httplib::Request& req, const httplib::Response& res) {
    if (c->metrics)
      c->metrics->http_request(endpoint_label(req.path), res.status);
    VOLT_DEBUG("http", req.remote_addr << " " << req.method << " " << req.path
                                       << " " << res.status);
  });
  auto where = options.host + ":" + std::to_string(options.port);
  int port = options.port;
  if (port == 0)
    port = svr.bind_to_any_port(options.host);
  else if (!svr.bind_to_port(options.host, port))
    port = -1;
  if (port <= 0) {
    // httplib says only that it failed; a plain bind says why.
    std::string why = "cannot bind";
    if (auto probe = listen_tcp(options.host, options.port); !probe)
      why = describe(probe.error());
    else
      close(probe->fd);
    return make_volt_error(volt_errc::invalid_config,
                           "[http] port: cannot listen on " + where + ": "
                             + why);
  }
  std::unique_ptr<api_server> result{new api_server{std::move(state)}};
  result->port_ = static_cast<uint16_t>(port);
  auto* server = &result->impl_->server;
  result->impl_->thread = std::thread{[server] { server->listen_after_bind(); }};
  return result;
}

void api_server::when_ready(std::function<void()> fn) {
  impl_->ctx.bridge->when_ready(std::move(fn));
}

api_server::~api_server() {
  stop();
}

void api_server::stop() {
  if (!impl_->thread.joinable())
    return;
  impl_->server.stop();
  // Requests in flight finish; idle connections end now rather than after
  // their keep-alive timeout.
  impl_->ctx.busy->close_idle(port_);
  impl_->thread.join();
}

} // namespace volt::http
