#!/usr/bin/env bash
# Builds volt-node and volt_tests here (CUDA on, sm_90) and bundles them with the
# non-system shared libraries they link (CAF, civetweb, prometheus-cpp, hiredis,
# toml++, sentencepiece, cpp-httplib and its brotli, libedit and its libbsd) into
# .device/ (ignored by git), to be named in the device tool's `carry`.
# On the GPU machine, scripts/device_run.sh runs them with LD_LIBRARY_PATH set.
# CUDA runtime and cuBLAS come from the GPU machine's own toolkit (same 13.0).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${VOLT_BUILD_DIR:-build-gpu}
# Release on first configure; an existing build folder keeps its type.
[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C "$build" -j"$(nproc)" volt-node volt_tests
rm -rf .device
mkdir -p .device/bin .device/lib
cp "$build/apps/volt-node" "$build/tests/volt_tests" .device/bin/
# Debug info would not fit the device tool's carry limit.
strip --strip-debug .device/bin/*
for bin in .device/bin/*; do
  ldd "$bin" | awk '/=> \//{print $3}' \
    | grep -E 'libcaf_|libcivetweb|libprometheus-cpp|libhiredis|libtomlplusplus|libsentencepiece|libcpp-httplib|libbrotli|libedit|libbsd|libmd' \
    | while read -r lib; do cp -L "$lib" .device/lib/; done
done
# The team's Mixtral-shaped checkpoint writer (transformers baseline), when
# this checkout sits beside the shared folder.
if [ -f ../shared/tools/mixtral_shape_checkpoint.py ]; then
  mkdir -p .device/tools
  cp ../shared/tools/mixtral_shape_checkpoint.py .device/tools/
fi
git rev-parse HEAD >.device/commit
if ! git diff --quiet HEAD -- . ':!.device'; then echo "+dirty" >>.device/commit; fi
du -sh .device
ls .device/lib
