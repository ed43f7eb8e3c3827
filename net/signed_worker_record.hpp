#pragma once

// Worker records as they are stored in Redis, signed when the cluster has a
// secret ([security] cluster_secret): anyone who can write to Redis could
// otherwise point routers at a host of their choosing.

#include <cstdint>
#include <string>

#include "caf/expected.hpp"
#include "net/worker_record.hpp"

namespace volt {

/// Renders `x` as the value of the Redis key `key`. Without a secret: the
/// record's JSON. With one, the JSON also carries "expires_ms", the Unix time
/// in milliseconds after which the record is void (so that a copy replayed
/// later does not outlive the worker by more than its TTL), and, last,
/// "hmac": the hex HMAC-SHA256 under the secret of
/// "volt worker record v1\n<key>\n<the JSON without hmac>".
std::string seal_worker_record(const worker_record& x, const std::string& key,
                               const std::string& secret, int64_t expires_ms);

/// Reads the value of the Redis key `key`, whose record must name the id the
/// key ends with. With a secret, a record is used only when signed with it,
/// for this key, and not expired at `now_ms`; without one, signatures and
/// expiry are not checked. Errors are one line naming the key and what is
/// wrong, never the secret.
caf::expected<worker_record>
open_worker_record(const std::string& key, const std::string& value,
                   const std::string& secret, int64_t now_ms);

/// Milliseconds since the Unix epoch, the clock of "expires_ms".
int64_t unix_ms_now();

} // namespace volt
