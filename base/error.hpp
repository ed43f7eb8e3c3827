#pragma once

#include <cstdint>
#include <string>

#include "caf/error.hpp"
#include "caf/expected.hpp"
#include "caf/message.hpp"
#include "caf/make_message.hpp"

namespace volt {

/// Error codes of Volt; every error also carries a one-line, human-readable
/// context string that names the file, key, tensor or field at fault.
enum class volt_errc : uint8_t {
  /// A TOML file, an environment override or a command-line flag is wrong.
  invalid_config = 1,
  /// A checkpoint folder, config.json or safetensors file is missing or
  /// malformed.
  invalid_checkpoint,
  /// A client request is malformed (bad token id, empty prompt, too long).
  invalid_request,
  /// No live host serves an expert that a request needs.
  missing_expert,
  /// The KV page pool has no free page right now (wait, preempt or evict).
  out_of_pages,
  /// An internal invariant broke; a bug in Volt.
  internal,
  /// The engine's queue is full: the request was well-formed and may be sent
  /// again later (HTTP maps this to 429, not to a client error).
  queue_full,
  /// The model computed a NaN or an infinity where a number is needed (a
  /// logit): the weights or the activations are broken, so no token is made.
  non_finite,
};

/// Returns the enumerator name of `x`.
std::string to_string(volt_errc x);

/// `what` with its line breaks written as \n and \r: one line.
std::string one_line(std::string what);

/// Creates an error with code `code` and the description `what`, made one
/// line (one_line).
caf::error make_volt_error(volt_errc code, std::string what);

/// Renders `err` as the one line that users see: the context string for our own
/// errors, CAF's rendering otherwise.
std::string describe(const caf::error& err);

/// Process exit code for errors caused by bad input (config, checkpoint, flags,
/// requests).
constexpr int exit_bad_input = 2;

} // namespace volt

CAF_ERROR_CODE_ENUM(volt::volt_errc, "volt")
