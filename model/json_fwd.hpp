#pragma once

#include <nlohmann/json_fwd.hpp>

namespace volt::json {

/// A JSON value. Objects keep document (or insertion) order: tensors list in
/// header order, and outputs print their fields in the order they were set.
/// Headers that only pass values around include this file, not json.hpp.
using value = nlohmann::ordered_json;

} // namespace volt::json
