#!/usr/bin/env bash
# Runs one ctest entry: volt_tests with CAF's runner at verbosity 4, where a
# failing check prints its file, line, expression and values ("!! ..."; at the
# default verbosity it prints nothing but a count), without the line it prints
# for every passing check ("** ..."). The exit status is volt_tests'.
#   run_suite.sh VOLT_TESTS ARGS...
set -o pipefail
"$@" -v 4 2>&1 | grep -v '^\*\* '
status=("${PIPESTATUS[@]}")
exit "${status[0]}"
