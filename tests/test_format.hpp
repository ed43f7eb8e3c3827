#pragma once

// Number formatting for test messages, shared by every suite that prints
// errors (CAF's stream shows doubles with 6 fixed decimals, which reads
// 1e-7 as 0.000000).

#include <cstdio>
#include <string>

namespace volt::test {

/// `x` as "1.23e-05".
inline std::string sci(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2e", x);
  return buf;
}

} // namespace volt::test
