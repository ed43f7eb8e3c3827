#pragma once

#include "config/node_config.hpp"
#include "model/checkpoint.hpp"

namespace volt {

class tls_files;

/// Runs a node of the role `cfg` names until SIGINT or SIGTERM, then shuts it
/// down gracefully: in-flight work finishes, a worker leaves Redis. Every role
/// logs one line containing "ready" once it serves. Node links use mutual TLS
/// with `tls` (which must outlive the call), else plaintext (the config said
/// [security] insecure = true, which is logged as a warning). Returns the exit
/// code.
int run_node(const node_config& cfg, const checkpoint& ckpt,
             const tls_files* tls);

} // namespace volt
