#pragma once

// Every test file includes this instead of caf/test/dsl.hpp directly: CAF
// 0.17.6's DSL uses a FAIL macro it never defines.
#ifndef FAIL
#  define FAIL(msg) CAF_FAIL(msg)
#endif
#include "caf/test/dsl.hpp"
