#pragma once

// Checks shared by the fuzz targets. A broken promise aborts like a crash, so
// libFuzzer keeps the input that broke it; the sanitizers catch the rest.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/error.hpp"

namespace volt::fuzz {

/// Ends the run like a crash, naming `what`.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what.c_str());
  std::abort();
}

/// Fails with the message `what` unless `ok`; `what` is evaluated only then
/// (it may describe an error that exists only on failure).
#define VOLT_FUZZ_REQUIRE(ok, what) \
  do {                              \
    if (!(ok))                      \
      ::volt::fuzz::fail(what);     \
  } while (false)

/// Refused input must come back as a Volt error of `code` whose message is one
/// non-empty line (base/error.hpp's contract).
inline void require_one_line_error(const caf::error& err, volt_errc code,
                                   const std::string& where) {
  VOLT_FUZZ_REQUIRE(err, where + ": refused without an error");
  auto text = describe(err);
  VOLT_FUZZ_REQUIRE(err == code, where + ": error of another code: " + text);
  VOLT_FUZZ_REQUIRE(!text.empty() && text.find('\n') == std::string::npos
                      && text.find('\r') == std::string::npos,
                    where + ": error message is not one line: " + text);
}

} // namespace volt::fuzz
