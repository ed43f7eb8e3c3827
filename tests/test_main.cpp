// The one translation unit that provides the CAF test runner's main().
#define CAF_TEST_UNIT_TEST_IMPL
#include "caf/test/unit_test_impl.hpp"
