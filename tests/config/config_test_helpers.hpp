#pragma once

// Shared by the config.* suites: check that a config error has the right code
// and a one-line message naming what it should.

#include <initializer_list>
#include <map>
#include <string>

#include "base/error.hpp"
#include "config/node_config.hpp"

namespace volt::test {

using env_map = std::map<std::string, std::string>;

/// Returns "" if `err` is invalid_config with a one-line message containing
/// every part of `parts`, otherwise what is wrong (so CAF_CHECK_EQUAL prints
/// it).
inline std::string error_mismatch(const caf::error& err,
                                  std::initializer_list<std::string> parts) {
  if (!err)
    return "expected an error, got none";
  auto msg = describe(err);
  if (err != volt_errc::invalid_config)
    return "wrong error code: " + caf::to_string(err);
  if (msg.find('\n') != std::string::npos)
    return "message is not one line: " + msg;
  for (const auto& part : parts)
    if (msg.find(part) == std::string::npos)
      return "message lacks '" + part + "': " + msg;
  return {};
}

inline std::string error_mismatch(const caf::expected<node_config>& x,
                                  std::initializer_list<std::string> parts) {
  if (x)
    return "expected an error, got a valid config";
  return error_mismatch(x.error(), parts);
}

/// Returns the one-line message of a failed result ("" if it succeeded).
inline std::string message_of(const caf::expected<node_config>& x) {
  return x ? std::string{} : describe(x.error());
}

/// `text` after a [model] section, the one every role needs.
inline std::string with_model(const std::string& text) {
  return "[model]\npath = \"m\"\n" + text;
}

/// Parses `text` as the file "node.toml" with no environment.
inline caf::expected<node_config> parse(const std::string& text,
                                        const env_map& env = {}) {
  return parse_node_config(text, "node.toml", env);
}

/// A valid worker file that tests modify one line at a time.
inline const std::string worker_toml = R"([node]
id = "worker-1"
role = "worker"

[network]
host = "127.0.0.1"
port = 7801

[model]
path = "tests/data/tiny-mixtral-a"

[worker]
experts = [0, 1, 2, 3]
device = "cpu"
)";

} // namespace volt::test

/// Checks that the expected<node_config> or error `x` is invalid_config, one
/// line, with every listed substring in its message.
#define CHECK_CONFIG_ERROR(x, ...) \
  CAF_CHECK_EQUAL(volt::test::error_mismatch((x), {__VA_ARGS__}), std::string{})
