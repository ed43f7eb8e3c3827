#pragma once

// Errors of the OpenAI-compatible API: an HTTP status plus OpenAI's error
// object, {"error": {"message", "type", "param", "code"}}.

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "caf/error.hpp"

namespace volt::http {

/// An error as OpenAI's API reports it.
struct api_error {
  /// The HTTP status: 400, 404, 405, 413, 429, 500 or 503.
  int status = 400;
  /// One line that names the field at fault and what is wrong with it.
  std::string message;
  /// OpenAI's error type, e.g. "invalid_request_error".
  std::string type = "invalid_request_error";
  /// The request field at fault; empty renders as null.
  std::string param;
  /// A machine-readable code, e.g. "model_not_found"; empty renders as null.
  std::string code;
};

/// 400: the field `param` is wrong; `message` says how.
api_error bad_request(std::string param, std::string message);

/// 413: the request or its prompt is too large; `code` says which limit.
api_error too_large(std::string param, std::string message, std::string code);

/// 404: the request names `requested`, but this node serves `served`.
api_error model_not_found(const std::string& requested,
                          const std::string& served);

/// 503: the node cannot serve this yet (or any more).
api_error unavailable(std::string message, std::string code);

/// Maps an error of the engine (or of CAF on the way to it) to its status:
/// a full queue is 429, a prompt or a KV need beyond the model's context or
/// the KV pool is 413, other bad requests 400, experts without a live host
/// and an engine that is gone 503, anything else 500.
api_error from_engine(const caf::error& err);

/// The body of `err`: {"error": {...}} (fields in OpenAI's order).
nlohmann::ordered_json to_json(const api_error& err);

} // namespace volt::http
