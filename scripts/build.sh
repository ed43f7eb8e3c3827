#!/usr/bin/env bash
# Builds volt-node and the tests into ${VOLT_BUILD_DIR:-build}, and the sanitizer folder
# ${VOLT_ASAN_BUILD_DIR} when set (after scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${VOLT_BUILD_DIR:-build}"
[ -f "$build_dir/CMakeCache.txt" ] || cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelNoDebInfo
cmake --build "$build_dir" -j "$(nproc)"
# The sanitizer folder, when scripts/setup.sh configured one.
if [ -n "${VOLT_ASAN_BUILD_DIR:-}" ]; then
  cmake --build "$VOLT_ASAN_BUILD_DIR" -j "$(nproc)"
fi
