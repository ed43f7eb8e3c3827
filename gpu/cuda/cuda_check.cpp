#include "gpu/cuda/cuda_check.hpp"

namespace volt::cuda {

void throw_cuda_error(const char* call, const char* file, int line,
                      const std::string& why) {
  throw cuda_error(std::string{call} + " failed at " + file + ":"
                   + std::to_string(line) + ": " + why);
}

} // namespace volt::cuda
