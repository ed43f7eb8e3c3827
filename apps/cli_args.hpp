#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "caf/expected.hpp"
#include "model/expert_miss_mode.hpp"
#include "model/quantize.hpp"

namespace volt {

/// A flag a subcommand accepts.
struct flag_spec {
  std::string name; // without the leading "--"
  bool takes_value; // false: a switch such as --json
  std::string help; // one line for --help
};

/// Parsed command-line flags of one subcommand.
class cli_args {
public:
  /// Parses `--name value`, `--name=value` and switches; an unknown flag, a
  /// missing value or a stray positional argument is an error naming it (with a
  /// suggestion when close).
  static caf::expected<cli_args> parse(const std::vector<std::string>& args,
                                       const std::vector<flag_spec>& specs);

  bool has(const std::string& name) const;

  /// The flag's value, or `fallback` when absent.
  std::string get(const std::string& name,
                  const std::string& fallback = "") const;

  /// The flag's value as an integer in [lo, hi]; errors name the flag.
  caf::expected<int64_t> get_int(const std::string& name, int64_t fallback,
                                 int64_t lo, int64_t hi) const;

  /// The flag's value as a finite number in [lo, hi]; errors name the flag.
  caf::expected<double> get_double(const std::string& name, double fallback,
                                   double lo, double hi) const;

  /// The flag's value as a device: -1 for "cpu", N for "cuda:N"; errors name
  /// the flag.
  caf::expected<int> get_device(const std::string& name,
                                const std::string& fallback) const;

  /// The flag's value as a weight format, "none" or "int8" (default none);
  /// the error names the flag.
  caf::expected<weight_quantization>
  get_quantization(const std::string& name) const;

  /// The flag's value as where an expert cache's misses run: "auto"
  /// (default), "load" or "host" ([worker] expert_misses); the error names
  /// the flag.
  caf::expected<expert_miss_mode>
  get_expert_misses(const std::string& name) const;

  /// The flag's value as a comma-separated list of integers in [lo, hi].
  caf::expected<std::vector<int64_t>>
  get_int_list(const std::string& name, int64_t lo, int64_t hi) const;

private:
  std::map<std::string, std::string> values_;
};

/// Sets the log threshold from --log-level, else from the environment's
/// VOLT_LOG_LEVEL (same words; empty counts as unset), else to `fallback`.
/// An unknown level in either is an error naming where it came from.
caf::error apply_log_level(const cli_args& args, log_level fallback);

/// `flags` followed by `more` (flags several subcommands share).
std::vector<flag_spec> with_flags(std::vector<flag_spec> flags,
                                  const std::vector<flag_spec>& more);

/// Renders the flags as help lines.
std::string render_flags(const std::vector<flag_spec>& specs);

} // namespace volt
