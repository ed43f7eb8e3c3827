#include "net/worker_record.hpp"

#include "base/error.hpp"
#include "model/json.hpp"

namespace volt {

json::value to_json_object(const worker_record& x) {
  return {{"id", x.id},
          {"host", x.host},
          {"port", x.port},
          {"experts", x.experts},
          {"device", x.device},
          {"load", json::rounded(x.load, 3)}};
}

std::string to_json(const worker_record& x) {
  return json::dump(to_json_object(x));
}

caf::expected<worker_record> parse_worker_record(const std::string& text) {
  auto doc = json::parse(text, "worker record");
  if (!doc)
    return std::move(doc.error());
  return parse_worker_record(*doc);
}

caf::expected<worker_record> parse_worker_record(const json::value& doc) {
  auto fail = [](const std::string& what) {
    return make_volt_error(volt_errc::invalid_request,
                           "worker record: " + what);
  };
  if (!doc.is_object())
    return fail("expected a JSON object");
  worker_record result;
  auto text_field = [&](const char* name, std::string& out) {
    const auto* v = json::find(doc, name);
    if (v == nullptr || !v->is_string()
        || v->get_ref<const std::string&>().empty())
      return false;
    out = v->get<std::string>();
    return true;
  };
  if (!text_field("id", result.id))
    return fail("'id' must be a non-empty string");
  if (!text_field("host", result.host))
    return fail("'host' must be a non-empty string");
  if (!text_field("device", result.device))
    return fail("'device' must be a non-empty string");
  const auto* port_field = json::find(doc, "port");
  auto port = port_field ? json::to_int64(*port_field) : std::nullopt;
  if (!port || *port < 1 || *port > 65535)
    return fail("'port' must be an integer in [1, 65535]");
  result.port = static_cast<uint16_t>(*port);
  const auto* experts = json::find(doc, "experts");
  if (experts == nullptr || !experts->is_array())
    return fail("'experts' must be an array of expert ids");
  for (const auto& e : *experts) {
    auto id = json::to_int64(e);
    if (!id || *id < 0 || *id > 0xFFFFFFFFll)
      return fail("'experts' must be an array of expert ids");
    result.experts.push_back(static_cast<uint32_t>(*id));
  }
  if (const auto* load = json::find(doc, "load"); load != nullptr) {
    if (!load->is_number())
      return fail("'load' must be a number");
    result.load = load->get<double>();
  }
  return result;
}

} // namespace volt
