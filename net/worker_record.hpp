#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "caf/expected.hpp"
#include "model/json_fwd.hpp"

namespace volt {

/// What a worker publishes about itself in Redis, under
/// `worker_record_key(id)` with a TTL that its heartbeats refresh.
struct worker_record {
  std::string id;
  std::string host;
  uint16_t port = 0;
  std::vector<uint32_t> experts;
  std::string device;
  /// Token rows computed per second over the last heartbeat interval.
  double load = 0;
};

/// Key prefix of worker records; routers SCAN for `prefix*`.
inline const std::string worker_record_prefix = "volt:worker:";

/// Channel on which workers announce "join <id>" and "leave <id>".
inline const std::string worker_channel = "volt:workers";

inline std::string worker_record_key(const std::string& id) {
  return worker_record_prefix + id;
}

/// The record as a JSON object.
json::value to_json_object(const worker_record& x);

/// Renders a record as one JSON object.
std::string to_json(const worker_record& x);

/// Reads a record from a parsed document; the bytes come from Redis, so
/// every field is checked and the error names it. Other fields are ignored.
caf::expected<worker_record> parse_worker_record(const json::value& doc);

/// Parses and reads a record.
caf::expected<worker_record> parse_worker_record(const std::string& json);

} // namespace volt
