#pragma once

// Where a GPU expert cache's miss may run ([worker] expert_misses): a plain
// enum shared by the configuration and the CUDA executor.

#include <cstdint>

namespace volt {

enum class expert_miss_mode : uint8_t {
  /// On the host where one expert is measured faster there than its copy,
  /// for bf16 experts (TOML "auto").
  automatic,
  /// Always copied to the device (TOML "load").
  load,
  /// On the host wherever the cache chooses, measured faster or not, for
  /// bf16 experts (TOML "host").
  host,
};

} // namespace volt
