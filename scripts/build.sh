#!/usr/bin/env bash
# Builds volt-node and the tests into ${VOLT_BUILD_DIR:-build} (after scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${VOLT_BUILD_DIR:-build}"
[ -f "$build_dir/CMakeCache.txt" ] || cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build_dir" -j "$(nproc)"
