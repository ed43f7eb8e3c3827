// Fuzzes the node configuration (config/): TOML files through
// parse_node_config, and VOLT_<SECTION>_<KEY> environment overrides through
// default_node_config. Input starting with a NUL byte is an override: the next
// byte picks the key from the key table, the rest (up to another NUL, which no
// environment can hold) is its text; any other input is a TOML file. An
// accepted config must hold every key within its documented range, and
// written back as TOML (every key, through to_toml_literal) it must read back
// the same.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "config/config_keys.hpp"
#include "config/node_config.hpp"
#include "fuzz/fuzz_check.hpp"
#include "text/utf8.hpp"

using namespace volt;

namespace {

const std::string source = "fuzz.toml";

/// Every key of `cfg` as one TOML document.
std::string to_toml(const node_config& cfg) {
  std::string out;
  std::string section;
  for (auto& key : config_keys()) {
    if (section != key.section) {
      section = key.section;
      out += "[" + section + "]\n";
    }
    out += std::string{key.name} + " = " + to_toml_literal(key.access.get(cfg))
           + "\n";
  }
  return out;
}

void check_keys(const node_config& cfg) {
  for (auto& key : config_keys()) {
    auto problem = check_range(key, key.access.get(cfg));
    VOLT_FUZZ_REQUIRE(problem.empty(), std::string{key.section} + "." + key.name
                                         + " out of range: " + problem);
  }
}

void check_round_trip(const node_config& cfg) {
  auto text = to_toml(cfg);
  auto again = parse_node_config(text, source, {});
  VOLT_FUZZ_REQUIRE(static_cast<bool>(again),
                    "written config is refused: " + describe(again.error())
                      + "\n" + text);
  for (auto& key : config_keys())
    VOLT_FUZZ_REQUIRE(key.access.get(cfg) == key.access.get(*again),
                      std::string{key.section} + "." + key.name
                        + " changed on the round trip:\n" + text);
}

/// Applies the override `input` (a key index, then its text) to the
/// defaults; `text` is set to the override's text.
caf::expected<node_config> from_environment(std::string_view input,
                                            std::string_view& text) {
  const auto& keys = config_keys();
  const auto& key = keys[static_cast<unsigned char>(input[0]) % keys.size()];
  text = input.substr(1);
  text = text.substr(0, text.find('\0'));
  std::map<std::string, std::string> env{{"VOLT_MODEL_PATH", "/models/x"}};
  env[env_name(key)] = std::string{text};
  return default_node_config(env);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input{reinterpret_cast<const char*>(data), size};
  bool from_env = size >= 2 && data[0] == 0;
  std::string_view env_text;
  auto cfg = from_env ? from_environment(input.substr(1), env_text)
                      : parse_node_config(std::string{input}, source, {});
  if (!cfg) {
    auto where = from_env ? std::string{"environment"} : source;
    volt::fuzz::require_one_line_error(cfg.error(), volt_errc::invalid_config,
                                       where);
    VOLT_FUZZ_REQUIRE(describe(cfg.error()).find(where) != std::string::npos,
                      "error does not name its origin: "
                        + describe(cfg.error()));
    return 0;
  }
  check_keys(*cfg);
  // TOML holds UTF-8 only; other bytes stay a matter of the environment.
  if (!from_env || is_valid_utf8(env_text))
    check_round_trip(*cfg);
  return 0;
}
