#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace volt {

/// Returns how many bytes the UTF-8 sequence that starts with `lead` has (1 to
/// 4), or 0 when `lead` cannot start a sequence (a continuation byte, or a byte
/// that never appears in UTF-8).
int utf8_sequence_length(uint8_t lead);

/// Returns how many bytes at the end of `bytes` start a multi-byte UTF-8
/// sequence that still lacks continuation bytes (0 to 3), i.e. could become a
/// character once more bytes come. Errs towards holding bytes (an overlong or
/// surrogate start counts too): the stream decoder only waits longer for it.
size_t unfinished_utf8_tail(const uint8_t* bytes, size_t size);

/// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates,
/// nothing above U+10FFFF, no truncated sequence).
bool is_valid_utf8(std::string_view text);

} // namespace volt
