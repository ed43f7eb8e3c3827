#include "prefetch/routing_trace.hpp"

#include <cstdio>
#include <fstream>

#include "base/error.hpp"
#include "model/json.hpp"

namespace volt::prefetch {

namespace {

constexpr const char* format_name = "volt-routing-trace";
constexpr int64_t format_version = 1;

caf::error trace_error(const std::string& path, const std::string& what) {
  return make_volt_error(volt_errc::invalid_config,
                         "routing trace " + path + ": " + what);
}

/// The integer member `key` in [lo, hi].
caf::expected<int64_t> int_field(const json::value& doc, const char* key,
                                 int64_t lo, int64_t hi,
                                 const std::string& path) {
  const auto* x = json::find(doc, key);
  auto v = x ? json::to_int64(*x) : std::nullopt;
  if (!v || *v < lo || *v > hi)
    return trace_error(path, std::string{"\""} + key
                               + "\": expected an integer in ["
                               + std::to_string(lo) + ", " + std::to_string(hi)
                               + "]");
  return *v;
}

/// The array member `key` of integers in [0, bound).
caf::expected<std::vector<int32_t>> ids_field(const json::value& doc,
                                              const char* key, int64_t bound,
                                              const std::string& path) {
  const auto* x = json::find(doc, key);
  if (x == nullptr || !x->is_array())
    return trace_error(path, std::string{"\""} + key
                               + "\": expected an array of integers");
  std::vector<int32_t> ids;
  ids.reserve(x->size());
  for (const auto& item : *x) {
    auto v = json::to_int64(item);
    if (!v || *v < 0 || *v >= bound)
      return trace_error(path, std::string{"\""} + key + "\"["
                                 + std::to_string(ids.size())
                                 + "]: expected an integer in [0, "
                                 + std::to_string(bound) + ")");
    ids.push_back(static_cast<int32_t>(*v));
  }
  return ids;
}

} // namespace

caf::expected<routing_trace> load_routing_trace(const std::string& path) {
  auto doc = json::parse_file(path);
  if (!doc)
    return std::move(doc.error());
  if (!doc->is_object())
    return trace_error(path, "expected a JSON object");
  const auto* format = json::find(*doc, "format");
  if (format == nullptr || !format->is_string()
      || format->get<std::string>() != format_name)
    return trace_error(path, std::string{"\"format\": expected \""}
                               + format_name + "\"");
  auto version = int_field(*doc, "version", format_version, format_version,
                           path);
  if (!version)
    return std::move(version.error());
  routing_trace t;
  if (const auto* model = json::find(*doc, "model"); model && model->is_string())
    t.model = model->get<std::string>();
  auto layers = int_field(*doc, "layers", 1, 1 << 16, path);
  auto experts = int_field(*doc, "experts", 1, 1 << 16, path);
  if (!layers)
    return std::move(layers.error());
  if (!experts)
    return std::move(experts.error());
  auto top_k = int_field(*doc, "top_k", 1, *experts, path);
  if (!top_k)
    return std::move(top_k.error());
  t.layers = *layers;
  t.experts = *experts;
  t.top_k = *top_k;
  auto tokens = ids_field(*doc, "tokens", int64_t{1} << 31, path);
  if (!tokens)
    return std::move(tokens.error());
  if (tokens->empty())
    return trace_error(path, "\"tokens\": no tokens");
  auto routing = ids_field(*doc, "routing", t.experts, path);
  if (!routing)
    return std::move(routing.error());
  const auto want = static_cast<int64_t>(tokens->size()) * t.layers * t.top_k;
  if (static_cast<int64_t>(routing->size()) != want)
    return trace_error(path, "\"routing\": " + std::to_string(routing->size())
                               + " expert ids, expected " + std::to_string(want)
                               + " (tokens x layers x top_k)");
  t.tokens = std::move(*tokens);
  t.routing = std::move(*routing);
  return t;
}

caf::error save_routing_trace(const routing_trace& trace,
                              const std::string& path) {
  json::value doc = {{"format", format_name},
                     {"version", format_version},
                     {"model", trace.model},
                     {"layers", trace.layers},
                     {"experts", trace.experts},
                     {"top_k", trace.top_k},
                     {"tokens", trace.tokens},
                     {"routing", trace.routing}};
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << json::dump(doc) << '\n';
  out.close();
  if (!out)
    return make_volt_error(volt_errc::invalid_config,
                           "routing trace " + path + ": cannot write the file");
  return {};
}

caf::error check_trace_fits(const routing_trace& trace,
                            const model_config& cfg, const std::string& path) {
  if (trace.experts != cfg.num_local_experts
      || trace.top_k != cfg.num_experts_per_tok)
    return trace_error(path, "recorded with " + std::to_string(trace.experts)
                               + " experts, top-" + std::to_string(trace.top_k)
                               + "; the model has "
                               + std::to_string(cfg.num_local_experts)
                               + ", top-"
                               + std::to_string(cfg.num_experts_per_tok));
  for (size_t i = 0; i < trace.tokens.size(); ++i)
    if (trace.tokens[i] >= cfg.vocab_size)
      return trace_error(path, "\"tokens\"[" + std::to_string(i) + "]: "
                                 + std::to_string(trace.tokens[i])
                                 + " is outside the model's vocabulary of "
                                 + std::to_string(cfg.vocab_size) + " tokens");
  return {};
}

} // namespace volt::prefetch
