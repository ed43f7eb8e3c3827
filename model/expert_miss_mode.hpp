#pragma once

// Where a GPU expert cache's miss may run ([worker] expert_misses): a plain
// enum shared by the configuration and the CUDA executor.

#include <cstdint>

namespace volt {

enum class expert_miss_mode : uint8_t {
  /// On the host or copied, whichever makes each layer's wait shortest
  /// given the costs timed at start; bf16 experts (TOML "auto").
  automatic,
  /// Always copied to the device (TOML "load").
  load,
  /// Always on the host, those worth keeping copied in the background;
  /// bf16 experts (TOML "host").
  host,
};

} // namespace volt
