// The headers Clang builds precompile for each target (cmake/build_types.cmake).
// Only headers that every file may see: no macros of our own, nothing that
// changes meaning with defines set per file.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "caf/all.hpp"
#include "caf/io/all.hpp"
