#pragma once

#include <cstddef>
#include <string>

#include "caf/error.hpp"
#include "config/node_config.hpp"

namespace volt {

/// The shortest cluster secret accepted: 32 characters, the output size of
/// HMAC-SHA256 (`openssl rand -hex 32` makes one of 64).
constexpr size_t min_cluster_secret_size = 32;

/// "" or what is wrong with a cluster secret; never repeats the secret.
std::string check_cluster_secret(const std::string& secret);

/// Reads [security] cluster_secret_file, when set, into
/// `cfg.security.cluster_secret` (surrounding whitespace removed, so a
/// trailing newline does not count). Errors are one line naming the source,
/// the key and the file: both keys set, an unreadable file, a short secret.
/// A file that others may read is accepted with a warning in the log.
caf::error load_cluster_secret(node_config& cfg);

} // namespace volt
