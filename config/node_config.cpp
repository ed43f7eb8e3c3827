#include "config/node_config.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.hpp"
#include "config/cluster_secret.hpp"
#include "config/readers.hpp"

extern char** environ;

namespace volt {

namespace {

caf::error config_error(std::string what) {
  return make_volt_error(volt_errc::invalid_config, std::move(what));
}

/// Names the origin of a config in messages; a config without a file came from
/// the environment.
std::string origin(const node_config& cfg) {
  return cfg.source.empty() ? "environment" : cfg.source;
}

/// The TLS files come as a set of three, and never with insecure = true: a
/// half-made TLS setup or a contradiction must not fall back to plaintext.
caf::error check_tls_keys(const security_section& sec,
                          const std::string& where) {
  const std::pair<const char*, const std::string*> files[] = {
    {"tls_cert", &sec.tls_cert},
    {"tls_key", &sec.tls_key},
    {"tls_ca", &sec.tls_ca},
  };
  std::vector<std::string> set;
  std::vector<std::string> unset;
  for (const auto& [name, value] : files)
    (value->empty() ? unset : set).emplace_back(name);
  auto list = [](const std::vector<std::string>& names) {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i)
      out += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + names[i];
    return out;
  };
  if (!set.empty() && !unset.empty())
    return config_error(where + ": [security] " + list(unset) + ": missing ("
                        + list(set) + (set.size() == 1 ? " is" : " are")
                        + " set; mutual TLS needs the certificate, its key "
                          "and the CA)");
  if (!set.empty() && sec.insecure)
    return config_error(where
                        + ": [security] insecure: true while tls_cert, "
                          "tls_key and tls_ca are set; choose one (remove "
                          "insecure to use TLS)");
  return {};
}

/// The [autoscaler] keys that bound each other.
caf::error check_autoscaler(const autoscaler_section& a,
                            const std::string& where) {
  auto ms = [](uint32_t x) { return std::to_string(x) + " ms"; };
  for (auto [key, window] :
       {std::pair<const char*, uint32_t>{"window_ms", a.window_ms},
        {"scale_down_window_ms", a.scale_down_window_ms}})
    if (window < a.interval_ms)
      return config_error(where + ": [autoscaler] " + key + ": " + ms(window)
                          + " is shorter than interval_ms (" + ms(a.interval_ms)
                          + "): a window needs at least one sample");
  if (a.scale_down_queue_depth >= a.queue_depth_threshold)
    return config_error(where + ": [autoscaler] scale_down_queue_depth: "
                        + std::to_string(a.scale_down_queue_depth)
                        + " must be below queue_depth_threshold ("
                        + std::to_string(a.queue_depth_threshold)
                        + "), or load would count as high and low at once");
  return {};
}

/// Checks what involves more than one key; each key was already checked on its
/// own.
caf::error validate(const node_config& cfg) {
  auto where = origin(cfg);
  if (cfg.model.path.empty())
    return config_error(
      where
      + ": [model] path: must be set for every role (the folder with "
        "config.json and *.safetensors; or set VOLT_MODEL_PATH)");
  // A worker without [worker] experts hosts only what routers spawn on it.
  if (cfg.node.role == node_role::router
      && cfg.discovery.mode == discovery_mode::static_list
      && cfg.router.workers.empty() && cfg.router.placement.empty())
    return config_error(
      where
      + ": [router] workers: a router with [discovery] mode = "
        "\"static\" needs at least one worker \"host:port\" or a [router] "
        "placement (or set VOLT_ROUTER_WORKERS)");
  // A standalone node's experts run where its model runs, or in a CUDA
  // expert actor beside a CPU model.
  bool gpu_experts = cfg.worker.device != "cpu"
                     || (cfg.node.role == node_role::standalone
                         && cfg.model.device != "cpu");
  if (cfg.model.quantization == "int8" && !gpu_experts
      && cfg.node.role != node_role::router)
    return config_error(where
                        + ": [model] quantization: \"int8\" runs on the GPU "
                          "expert path; set [model] device or [worker] device "
                          "= \"cuda:N\" (or quantization = \"none\")");
  if (cfg.node.role == node_role::standalone && cfg.model.device != "cpu"
      && cfg.worker.device != "cpu" && cfg.worker.device != cfg.model.device)
    return config_error(where + ": [worker] device: " + cfg.worker.device
                        + " differs from [model] device = " + cfg.model.device
                        + "; a standalone node with its model on a GPU "
                          "computes its experts there (leave [worker] device "
                          "at \"cpu\")");
  if (cfg.worker.gpu_expert_slots > 0
      && (cfg.node.role == node_role::router || !gpu_experts))
    return config_error(where + ": [worker] gpu_expert_slots: the expert cache "
                                "keeps the experts this node computes on a GPU "
                                "([worker] device = \"cuda:N\", or a "
                                "standalone node's [model] device); leave it "
                                "at 0 here");
  if (cfg.model.activations == "float32" && cfg.node.role == node_role::router)
    return config_error(where + ": [model] activations: \"float32\" needs "
                                "the experts on this node (a standalone "
                                "node); a router sends its rows to workers in "
                                "bf16");
  if (cfg.model.activations == "float32" && cfg.worker.gpu_expert_slots > 0)
    return config_error(where + ": [model] activations: \"float32\" does not "
                                "work with the expert cache ([worker] "
                                "gpu_expert_slots); leave one of them at its "
                                "default");
  if (cfg.discovery.ttl_ms <= cfg.discovery.heartbeat_ms)
    return config_error(where + ": [discovery] ttl_ms: "
                        + std::to_string(cfg.discovery.ttl_ms)
                        + " must exceed heartbeat_ms ("
                        + std::to_string(cfg.discovery.heartbeat_ms)
                        + "), or keys expire between refreshes");
  if (cfg.metrics.port != 0 && cfg.metrics.port == cfg.network.port)
    return config_error(
      where + ": [metrics] port: " + std::to_string(cfg.metrics.port)
      + " is also [network] port (use another port, or 0 to disable "
        "metrics)");
  if (auto err = check_tls_keys(cfg.security, where))
    return err;
  if (auto err = check_autoscaler(cfg.autoscaler, where))
    return err;
  // Workers serve no API, so one file can give every role the same [http].
  if (cfg.http.port != 0 && cfg.node.role != node_role::worker) {
    auto clash = [&](const char* key) {
      return config_error(where + ": [http] port: "
                          + std::to_string(cfg.http.port) + " is also " + key
                          + " (use another port, or 0 to disable the API)");
    };
    if (cfg.http.port == cfg.network.port)
      return clash("[network] port");
    if (cfg.http.port == cfg.metrics.port)
      return clash("[metrics] port");
  }
  return {};
}

caf::expected<node_config>
finish(node_config cfg, const std::map<std::string, std::string>& env) {
  if (auto err = apply_environment(env, cfg))
    return err;
  if (auto err = validate(cfg))
    return err;
  if (auto err = load_cluster_secret(cfg))
    return err;
  return cfg;
}

} // namespace

std::string to_string(node_role x) {
  switch (x) {
    case node_role::standalone: return "standalone";
    case node_role::router: return "router";
    case node_role::worker: return "worker";
  }
  return "node_role(" + std::to_string(static_cast<int>(x)) + ")";
}

std::string to_string(discovery_mode x) {
  switch (x) {
    case discovery_mode::static_list: return "static";
    case discovery_mode::redis: return "redis";
  }
  return "discovery_mode(" + std::to_string(static_cast<int>(x)) + ")";
}

std::string to_string(expert_miss_mode x) {
  switch (x) {
    case expert_miss_mode::automatic: return "auto";
    case expert_miss_mode::load: return "load";
    case expert_miss_mode::host: return "host";
  }
  return "expert_miss_mode(" + std::to_string(static_cast<int>(x)) + ")";
}

std::string to_string(missing_expert_policy x) {
  switch (x) {
    case missing_expert_policy::fail: return "fail";
    case missing_expert_policy::renormalize: return "renormalize";
  }
  return "missing_expert_policy(" + std::to_string(static_cast<int>(x)) + ")";
}

caf::expected<node_config>
load_node_config(const std::string& file,
                 const std::map<std::string, std::string>& env) {
  errno = 0;
  std::ifstream in{file, std::ios::binary};
  auto open_errno = errno;
  std::error_code ec;
  if (!in.is_open() || std::filesystem::is_directory(file, ec)) {
    // Reading a directory "opens" fine and fails later; say what is wrong up
    // front.
    auto reason = in.is_open()      ? std::string{"is a directory"}
                  : open_errno != 0 ? std::string{std::strerror(open_errno)}
                                    : std::string{};
    return config_error((file.empty() ? "\"\"" : file) + ": cannot open file"
                        + (reason.empty() ? "" : " (" + reason + ")"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return config_error(file + ": cannot read file");
  return parse_node_config(text.str(), file, env);
}

caf::expected<node_config>
parse_node_config(const std::string& toml_text, const std::string& source_name,
                  const std::map<std::string, std::string>& env) {
  node_config cfg;
  cfg.source = source_name.empty() ? "<toml>" : source_name;
  if (auto err = read_toml_text(toml_text, cfg.source, cfg))
    return err;
  return finish(std::move(cfg), env);
}

caf::expected<node_config>
default_node_config(const std::map<std::string, std::string>& env) {
  return finish(node_config{}, env);
}

caf::error check_against_model(const node_config& cfg, uint32_t n_experts,
                               const std::string& model_config_file) {
  for (const auto& entry : cfg.router.placement)
    for (auto id : entry.experts)
      if (id >= n_experts)
        return config_error(origin(cfg) + ": [router] placement: expert "
                            + std::to_string(id) + " for node " + entry.node
                            + " is outside the model ("
                            + std::to_string(n_experts) + " experts in "
                            + model_config_file + ")");
  for (auto id : cfg.worker.experts)
    if (id >= n_experts)
      return config_error(origin(cfg) + ": [worker] experts: expert "
                          + std::to_string(id) + " is outside the model ("
                          + std::to_string(n_experts)
                          + (n_experts == 1 ? " expert in " : " experts in ")
                          + model_config_file + ")");
  if (cfg.prefetch.max_staged > n_experts)
    return config_error(origin(cfg) + ": [prefetch] max_staged = "
                        + std::to_string(cfg.prefetch.max_staged)
                        + " exceeds the model's "
                        + std::to_string(n_experts) + " experts per layer ("
                        + model_config_file + ")");
  return {};
}

caf::error check_link_security(const node_config& cfg) {
  const auto& sec = cfg.security;
  if (sec.insecure || !sec.tls_cert.empty())
    return {};
  return config_error(
    origin(cfg)
    + ": [security] tls_cert, tls_key and tls_ca: not set, and insecure is "
      "not true; a node needs mutual TLS on its links (scripts/make_certs.sh "
      "DIR makes the files) or insecure = true for plaintext on a network "
      "you trust");
}

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> result;
  for (auto entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text{*entry};
    auto eq = text.find('=');
    if (eq != std::string_view::npos)
      result.emplace(text.substr(0, eq), text.substr(eq + 1));
  }
  return result;
}

} // namespace volt
