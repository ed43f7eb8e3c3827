#!/usr/bin/env bash
# Builds volt-node and the tests into ${VOLT_BUILD_DIR:-build}, and in the sanitizer folder
# ${VOLT_ASAN_BUILD_DIR}, when set, everything (only the fuzz targets with VOLT_ASAN_SUITE=0)
# (after scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${VOLT_BUILD_DIR:-build}"
[ -f "$build_dir/CMakeCache.txt" ] || cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelNoDebInfo
cmake --build "$build_dir" -j "$(nproc)"
# The sanitizer folder, when scripts/setup.sh configured one.
if [ -n "${VOLT_ASAN_BUILD_DIR:-}" ]; then
  if [ "${VOLT_ASAN_SUITE:-1}" = 1 ]; then
    cmake --build "$VOLT_ASAN_BUILD_DIR" -j "$(nproc)"
  else
    cmake --build "$VOLT_ASAN_BUILD_DIR" -j "$(nproc)" --target fuzz_targets
  fi
fi
