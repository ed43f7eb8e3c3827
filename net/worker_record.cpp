#include "net/worker_record.hpp"

#include <cstdio>

#include "base/error.hpp"
#include "model/json.hpp"

namespace volt {

std::string to_json(const worker_record& x) {
  std::string out = "{\"id\":" + json::quote(x.id)
                    + ",\"host\":" + json::quote(x.host)
                    + ",\"port\":" + std::to_string(x.port) + ",\"experts\":[";
  for (size_t i = 0; i < x.experts.size(); ++i)
    out += (i > 0 ? "," : "") + std::to_string(x.experts[i]);
  char load[32];
  std::snprintf(load, sizeof(load), "%.3f", x.load);
  return out + "],\"device\":" + json::quote(x.device) + ",\"load\":" + load
         + "}";
}

caf::expected<worker_record> parse_worker_record(const std::string& text) {
  auto fail = [](const std::string& what) {
    return make_volt_error(volt_errc::invalid_request,
                           "worker record: " + what);
  };
  auto doc = json::parse(text, "worker record");
  if (!doc)
    return std::move(doc.error());
  if (!doc->is_object())
    return fail("expected a JSON object");
  worker_record result;
  auto text_field = [&](const char* name, std::string& out) {
    const auto* v = doc->find(name);
    if (v == nullptr || !v->is_string() || v->as_string().empty())
      return false;
    out = v->as_string();
    return true;
  };
  if (!text_field("id", result.id))
    return fail("'id' must be a non-empty string");
  if (!text_field("host", result.host))
    return fail("'host' must be a non-empty string");
  if (!text_field("device", result.device))
    return fail("'device' must be a non-empty string");
  const auto* port = doc->find("port");
  if (port == nullptr || !port->is_int64() || port->as_int64() < 1
      || port->as_int64() > 65535)
    return fail("'port' must be an integer in [1, 65535]");
  result.port = static_cast<uint16_t>(port->as_int64());
  const auto* experts = doc->find("experts");
  if (experts == nullptr || !experts->is_array())
    return fail("'experts' must be an array of expert ids");
  for (const auto& e : experts->as_array()) {
    if (!e.is_int64() || e.as_int64() < 0 || e.as_int64() > 0xFFFFFFFFll)
      return fail("'experts' must be an array of expert ids");
    result.experts.push_back(static_cast<uint32_t>(e.as_int64()));
  }
  if (const auto* load = doc->find("load"); load != nullptr) {
    if (!load->is_number())
      return fail("'load' must be a number");
    result.load = load->as_double();
  }
  return result;
}

} // namespace volt
