#include "http/api_error.hpp"

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "caf/sec.hpp"

namespace volt::http {

namespace {

bool contains(const std::string& text, const char* part) {
  return text.find(part) != std::string::npos;
}

nlohmann::ordered_json or_null(const std::string& text) {
  return text.empty() ? nlohmann::ordered_json{} : nlohmann::ordered_json(text);
}

} // namespace

// Messages quote what the client sent (a field's name or value), which may
// hold line breaks: they are made one line, as every Volt message is.

api_error bad_request(std::string param, std::string message) {
  return {400, one_line(std::move(message)), "invalid_request_error",
          std::move(param), {}};
}

api_error too_large(std::string param, std::string message, std::string code) {
  return {413, one_line(std::move(message)), "invalid_request_error",
          std::move(param), std::move(code)};
}

api_error model_not_found(const std::string& requested,
                          const std::string& served) {
  return {404,
          one_line("The model '" + requested
                   + "' does not exist; this node serves '" + served + "'"),
          "invalid_request_error", "model", "model_not_found"};
}

api_error unavailable(std::string message, std::string code) {
  return {503, one_line(std::move(message)), "service_unavailable", {},
          std::move(code)};
}

api_error from_engine(const caf::error& err) {
  auto what = describe(err);
  if (err.category() == caf::atom("volt")) {
    switch (static_cast<volt_errc>(err.code())) {
      case volt_errc::queue_full:
        return {429, what, "rate_limit_error", {}, "queue_full"};
      case volt_errc::invalid_request:
        // The engine words its refusals in engine/scheduler.cpp; these are
        // the ones that are not the client's syntax but our limits.
        if (contains(what, "exceed the model's context"))
          return too_large("prompt", what, "context_length_exceeded");
        if (contains(what, "KV pages"))
          return too_large("max_tokens", what, "kv_cache_too_small");
        return bad_request({}, what);
      case volt_errc::missing_expert:
        return unavailable(what, "missing_expert");
      default: break;
    }
  } else if (err.category() == caf::atom("system")) {
    auto code = static_cast<caf::sec>(err.code());
    if (code == caf::sec::request_receiver_down)
      return unavailable("the engine is gone (the node is shutting down)",
                         "engine_down");
  }
  return {500, what, "server_error", {}, {}};
}

nlohmann::ordered_json to_json(const api_error& err) {
  return {{"error",
           {{"message", err.message},
            {"type", err.type},
            {"param", or_null(err.param)},
            {"code", or_null(err.code)}}}};
}

} // namespace volt::http
