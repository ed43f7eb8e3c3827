#pragma once

// How a node or a client secures its node links: the [security] TLS files,
// checked and loaded (net/tls_files.hpp), or plaintext.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "apps/cli_args.hpp"
#include "caf/expected.hpp"
#include "config/node_config.hpp"
#include "net/tls_files.hpp"

namespace volt {

/// A node's TLS files, or nullopt for a node with [security] insecure = true.
/// A node with neither, a file that is missing, unreadable or does not match
/// the others is an error naming the key and the file (exit code 2).
caf::expected<std::optional<tls_files>> node_link_tls(const node_config& cfg);

/// --tls-cert, --tls-key and --tls-ca, for subcommands that connect to a node.
const std::vector<flag_spec>& client_tls_flags();

/// A client's TLS files from those flags, else from VOLT_SECURITY_TLS_CERT,
/// _KEY and _CA in `env` (as a node reads them), each flag winning over its
/// variable; nullopt when none is given: the client then speaks plaintext,
/// which only a node with [security] insecure = true accepts. Some but not
/// all three, or the files together with VOLT_SECURITY_INSECURE=true, is an
/// error naming them.
caf::expected<std::optional<tls_files>>
client_link_tls(const cli_args& args,
                const std::map<std::string, std::string>& env);

/// Why a client could not connect to a node, with what it may mean for the
/// link's security: "... (the node closed the connection during the
/// handshake: ...)". `tls` says whether the client used TLS.
std::string describe_link_failure(const caf::error& err, bool tls);

} // namespace volt
