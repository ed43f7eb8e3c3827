#pragma once

#include <map>
#include <string>

#include "caf/error.hpp"

#include "config/node_config.hpp"

// The two sources of configuration values; node_config.cpp runs them in order
// (file, then environment) and validates the result.

namespace volt {

/// Parses `text` as TOML and stores every key in `cfg`; errors name `source`,
/// section and key.
caf::error read_toml_text(const std::string& text, const std::string& source,
                          node_config& cfg);

/// Applies every VOLT_<SECTION>_<KEY> variable of `env` to `cfg`; VOLT_
/// variables whose section part is not a config section are not ours and stay
/// untouched.
caf::error apply_environment(const std::map<std::string, std::string>& env,
                             node_config& cfg);

} // namespace volt
