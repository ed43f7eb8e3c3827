#include "net/signed_worker_record.hpp"

#include <chrono>

#include "base/digest.hpp"
#include "base/error.hpp"
#include "model/json.hpp"

namespace volt {

namespace {

/// The signed bytes: a version tag, the key (so that a record copied under
/// another key fails) and the canonical JSON (json::dump of the parsed
/// object reproduces what the worker signed).
digest256 record_mac(const std::string& secret, const std::string& key,
                     const json::value& unsigned_record) {
  return hmac_sha256(secret, "volt worker record v1\n" + key + "\n"
                               + json::dump(unsigned_record));
}

caf::error refused(const std::string& key, const std::string& why) {
  return make_volt_error(volt_errc::invalid_request, key + ": " + why);
}

} // namespace

std::string seal_worker_record(const worker_record& x, const std::string& key,
                               const std::string& secret, int64_t expires_ms) {
  auto doc = to_json_object(x);
  if (secret.empty())
    return json::dump(doc);
  doc["expires_ms"] = expires_ms;
  doc["hmac"] = to_hex(record_mac(secret, key, doc));
  return json::dump(doc);
}

caf::expected<worker_record>
open_worker_record(const std::string& key, const std::string& value,
                   const std::string& secret, int64_t now_ms) {
  auto doc = json::parse(value, "worker record");
  if (!doc)
    return refused(key, describe(doc.error()));
  if (!doc->is_object())
    return refused(key, "worker record: expected a JSON object");
  if (!secret.empty()) {
    const auto* mac_field = json::find(*doc, "hmac");
    if (mac_field == nullptr)
      return refused(key, "not signed, and [security] cluster_secret is set");
    digest256 mac{};
    if (!mac_field->is_string()
        || !from_hex(mac_field->get_ref<const std::string&>(), mac))
      return refused(key, "'hmac' must be 64 hex digits");
    doc->erase("hmac");
    if (!constant_time_equal(mac, record_mac(secret, key, *doc)))
      return refused(key, "wrong signature (signed with another cluster "
                          "secret, or changed after signing)");
    const auto* expires = json::find(*doc, "expires_ms");
    auto at = expires ? json::to_int64(*expires) : std::nullopt;
    if (!at)
      return refused(key, "signed without 'expires_ms'");
    if (*at < now_ms)
      return refused(key, "expired " + std::to_string(now_ms - *at)
                            + " ms ago (a replayed copy, or the clocks of "
                              "worker and router are out of step)");
  }
  auto record = parse_worker_record(*doc);
  if (!record)
    return refused(key, describe(record.error()));
  if (worker_record_key(record->id) != key)
    return refused(key, "the record names the id '" + record->id
                          + "', not the one its key ends with");
  return record;
}

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

} // namespace volt
