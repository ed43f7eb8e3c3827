#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

// "Did you mean ...?" suggestions for misspelled section names, keys and enum
// values.

namespace volt {

/// Returns the edit distance between `a` and `b`, counting insertions,
/// deletions, substitutions and swaps of adjacent characters as one edit each.
size_t edit_distance(std::string_view a, std::string_view b);

/// Returns the candidate closest to `word`, or "" if none is close enough to be
/// a typo.
std::string closest_match(std::string_view word,
                          const std::vector<std::string>& candidates);

} // namespace volt
