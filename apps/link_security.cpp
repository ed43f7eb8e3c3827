#include "apps/link_security.hpp"

#include "base/error.hpp"
#include "caf/sec.hpp"
#include "config/config_keys.hpp"
#include "config/readers.hpp"

namespace volt {

namespace {

caf::error config_error(std::string what) {
  return make_volt_error(volt_errc::invalid_config, std::move(what));
}

std::string list_of(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + names[i];
  return out;
}

} // namespace

caf::expected<std::optional<tls_files>> node_link_tls(const node_config& cfg) {
  if (auto err = check_link_security(cfg))
    return err;
  if (cfg.security.insecure)
    return std::optional<tls_files>{};
  auto key = [&](const char* name) {
    return cfg.source + ": [security] " + name;
  };
  tls_paths paths{cfg.security.tls_cert, cfg.security.tls_key,
                  cfg.security.tls_ca,   key("tls_cert"),
                  key("tls_key"),        key("tls_ca")};
  auto files = tls_files::load(paths);
  if (!files)
    return std::move(files.error());
  return std::optional<tls_files>{std::move(*files)};
}

const std::vector<flag_spec>& client_tls_flags() {
  static const std::vector<flag_spec> flags = {
    {"tls-cert", true,
     "with --connect: PEM certificate for mutual TLS with the node (else "
     "VOLT_SECURITY_TLS_CERT; without TLS files the client speaks "
     "plaintext)"},
    {"tls-key", true,
     "with --connect: its PEM private key (else VOLT_SECURITY_TLS_KEY)"},
    {"tls-ca", true,
     "with --connect: PEM certificate of the CA the node's certificate must "
     "chain to (else VOLT_SECURITY_TLS_CA)"},
  };
  return flags;
}

caf::expected<std::optional<tls_files>>
client_link_tls(const cli_args& args,
                const std::map<std::string, std::string>& env) {
  // The environment through the key table, as a node reads it: the same
  // names, the same checks of each value.
  std::map<std::string, std::string> security_env;
  for (const auto& [name, value] : env)
    if (name.rfind("VOLT_SECURITY_", 0) == 0)
      security_env.emplace(name, value);
  node_config from_env;
  if (auto err = apply_environment(security_env, from_env))
    return err;
  struct item {
    const char* flag;
    const char* key;
    std::string value;
    std::string origin;
  };
  item items[] = {
    {"tls-cert", "tls_cert", from_env.security.tls_cert, ""},
    {"tls-key", "tls_key", from_env.security.tls_key, ""},
    {"tls-ca", "tls_ca", from_env.security.tls_ca, ""},
  };
  std::vector<std::string> given;
  std::vector<std::string> missing;
  for (auto& x : items) {
    auto flag = "--" + std::string{x.flag};
    if (args.has(x.flag)) {
      x.value = args.get(x.flag);
      x.origin = flag;
    } else {
      x.origin = env_name(*find_config_key("security", x.key));
    }
    if (x.value.empty())
      missing.push_back(flag);
    else
      given.push_back(x.origin);
  }
  if (given.empty())
    return std::optional<tls_files>{};
  if (!missing.empty())
    return config_error(list_of(missing) + ": missing (" + list_of(given)
                        + (given.size() == 1 ? " is" : " are")
                        + " given; mutual TLS needs the certificate, its key "
                          "and the CA; each flag may also come from "
                          "VOLT_SECURITY_TLS_CERT, _KEY or _CA)");
  if (from_env.security.insecure)
    return config_error("VOLT_SECURITY_INSECURE: true while " + list_of(given)
                        + " are given; choose one");
  for (auto& x : items)
    if (x.origin.rfind("VOLT_", 0) == 0)
      x.origin = "environment: " + x.origin;
  tls_paths paths{items[0].value,  items[1].value,  items[2].value,
                  items[0].origin, items[1].origin, items[2].origin};
  auto files = tls_files::load(paths);
  if (!files)
    return std::move(files.error());
  return std::optional<tls_files>{std::move(*files)};
}

std::string describe_link_failure(const caf::error& err, bool tls) {
  auto text = describe(err);
  if (err != caf::sec::disconnect_during_handshake)
    return text;
  return text
         + (tls ? "; the node closed the connection during the handshake: it "
                  "may speak plaintext ([security] insecure = true) or not "
                  "accept this client's certificate (see its log)"
                : "; the node closed the connection during the handshake: it "
                  "may require mutual TLS (give --tls-cert, --tls-key and "
                  "--tls-ca, or VOLT_SECURITY_TLS_CERT, _KEY and _CA)");
}

} // namespace volt
