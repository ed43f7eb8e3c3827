#include "text/utf8.hpp"

namespace volt {

namespace {

bool is_continuation(uint8_t x) {
  return (x & 0xC0) == 0x80;
}

} // namespace

int utf8_sequence_length(uint8_t lead) {
  if (lead < 0x80)
    return 1;
  // 0xC0 and 0xC1 only start overlong forms; above 0xF4 lies beyond U+10FFFF.
  if (lead >= 0xC2 && lead <= 0xDF)
    return 2;
  if (lead >= 0xE0 && lead <= 0xEF)
    return 3;
  if (lead >= 0xF0 && lead <= 0xF4)
    return 4;
  return 0;
}

size_t unfinished_utf8_tail(const uint8_t* bytes, size_t size) {
  // A sequence is at most 4 bytes, so its lead byte is among the last 3 when
  // it is still unfinished.
  size_t continuations = 0;
  for (size_t i = size; i > 0 && continuations < 3; --i) {
    auto x = bytes[i - 1];
    if (!is_continuation(x)) {
      auto needed = static_cast<size_t>(utf8_sequence_length(x));
      return needed > continuations + 1 ? continuations + 1 : 0;
    }
    ++continuations;
  }
  return 0;
}

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    auto lead = static_cast<uint8_t>(text[i]);
    auto len = utf8_sequence_length(lead);
    if (len == 0 || i + len > text.size())
      return false;
    uint32_t cp = len == 1 ? lead : lead & (0x7F >> len);
    for (int k = 1; k < len; ++k) {
      auto x = static_cast<uint8_t>(text[i + k]);
      if (!is_continuation(x))
        return false;
      cp = (cp << 6) | (x & 0x3F);
    }
    static constexpr uint32_t min_for_length[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_length[len] || cp > 0x10FFFF
        || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

} // namespace volt
