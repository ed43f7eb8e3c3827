#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "caf/expected.hpp"

#include "model/json_fwd.hpp"

namespace volt::json {

/// Nesting depth beyond which `parse` rejects a document, so hostile input
/// cannot exhaust the stack of the code that later walks, copies or prints it.
constexpr size_t max_depth = 256;

/// Parses one JSON document (RFC 8259, UTF-8; a leading byte-order mark is
/// skipped). Rejects before building it: nesting deeper than `max_depth`,
/// duplicate keys (RFC 8259 leaves them open, and two entries for one tensor
/// must not silently pick one), numbers beyond double's range. Errors are one
/// line: "<source_name>:<line>:<column>: <what> (byte <offset>)".
caf::expected<value> parse(std::string_view text,
                           const std::string& source_name);

/// Reads and parses the file `path`; errors name the file.
caf::expected<value> parse_file(const std::string& path);

/// The member `key` of an object, or nullptr if absent or `x` is no object.
const value* find(const value& x, std::string_view key);

/// The number as int64_t when it is an integer int64_t holds exactly
/// (integral floats such as 1e3 count; 2^63 does not); nullopt otherwise.
std::optional<int64_t> to_int64(const value& x);

/// Compact JSON. NaN and infinities print as null (JSON has neither); bytes
/// that are not UTF-8 print as U+FFFD instead of throwing.
std::string dump(const value& x);

/// `x` rounded to `decimals` places, for outputs whose precision is chosen
/// (timings, rates); non-finite values stay as they are.
double rounded(double x, int decimals);

/// The double of the shortest decimal that reads back as `x`: prints float32
/// data exactly without the noise digits of its double widening.
double shortest(float x);

} // namespace volt::json
