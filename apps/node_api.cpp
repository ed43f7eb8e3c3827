#include "apps/node_api.hpp"

#include "base/error.hpp"
#include "base/log.hpp"

namespace volt {

caf::expected<std::unique_ptr<http::api_server>>
start_node_api(caf::actor_system& sys, const node_config& cfg,
               const checkpoint& ckpt, const engine_actor& engine,
               std::shared_ptr<node_metrics> metrics) {
  if (cfg.http.port == 0)
    return std::unique_ptr<http::api_server>{};
  auto model = http::load_served_model(cfg.model.path, ckpt.config(),
                                       cfg.http.model_name,
                                       cfg.http.chat_template);
  if (!model)
    return std::move(model.error());
  if (!model->text_error.empty())
    VOLT_WARN("http", "text endpoints are off: " << model->text_error);
  else if (!model->chat_error.empty())
    VOLT_WARN("http", model->chat_error);
  http::api_options options;
  options.host = cfg.http.host;
  options.port = cfg.http.port;
  options.threads = cfg.http.threads;
  options.timeout_s = cfg.http.timeout_s;
  options.max_body_bytes = size_t{cfg.http.max_body_mib} << 20;
  if (!cfg.http.api_keys_file.empty()) {
    auto keys = http::api_keys::load(cfg.http.api_keys_file);
    if (!keys)
      return make_volt_error(volt_errc::invalid_config,
                             cfg.source + ": " + describe(keys.error()));
    VOLT_INFO("http", "requests need one of the " << (*keys)->size()
                                                  << " API keys in "
                                                  << cfg.http.api_keys_file);
    options.keys = std::move(*keys);
    options.public_paths = cfg.http.public_paths;
  } else if (cfg.http.host.rfind("127.", 0) != 0 && cfg.http.host != "::1"
             && cfg.http.host != "localhost") {
    VOLT_WARN("http", "the API on " << cfg.http.host
                                    << " takes requests without a key; set "
                                       "[http] api_keys_file");
  }
  auto name = model->name;
  auto server = http::api_server::start(
    sys, engine, std::make_shared<const http::served_model>(std::move(*model)),
    std::move(metrics), options);
  if (!server)
    return make_volt_error(volt_errc::invalid_config,
                           cfg.source + ": " + describe(server.error()));
  VOLT_INFO("http", "OpenAI-compatible API on http://"
                      << cfg.http.host << ":" << (*server)->port()
                      << "/v1 serving model '" << name << "'");
  return server;
}

} // namespace volt
