// The process-wide switch of chained_launch.cuh.

#include "gpu/cuda/chained_launch.cuh"

#include <atomic>

namespace volt::cuda {

namespace {

std::atomic<bool> chained{true};

} // namespace

void set_chained_launch(bool on) {
  chained.store(on, std::memory_order_relaxed);
}

bool chained_launch() {
  return chained.load(std::memory_order_relaxed);
}

} // namespace volt::cuda
