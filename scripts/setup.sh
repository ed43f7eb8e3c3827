#!/usr/bin/env bash
# Installs Volt's build and test dependencies from Debian 12's archive and configures the
# build folder. Idempotent: packages already present are not fetched again, and an existing
# build folder is reused. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

# libssl-dev and openssl: mutual TLS on node links (CAF's OpenSSL module is in libcaf-dev);
# scripts/make_certs.sh and the tests make certificates with the openssl tool.
packages=(build-essential cmake pkg-config libcaf-dev prometheus-cpp-dev libhiredis-dev
          libtomlplusplus-dev libsentencepiece-dev nlohmann-json3-dev libcpp-httplib-dev
          libssl-dev openssl libedit-dev redis-server redis-tools curl)
# The sanitizer build and the fuzz targets, when asked for (VOLT_ASAN_BUILD_DIR,
# docs/TESTING.md): Clang with libFuzzer and the sanitizer runtimes.
if [ -n "${VOLT_ASAN_BUILD_DIR:-}" ]; then
  packages+=(clang-14 libfuzzer-14-dev)
fi
# The HTTP API's tests drive a node with the official OpenAI client for Node.js. A
# Node.js from elsewhere (NodeSource bundles npm) is kept; else Debian's packages.
if ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The main build: RelWithDebInfo's -O2 code without debug info
# (cmake/build_types.cmake says why).
build_dir="${VOLT_BUILD_DIR:-build}"
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  # The CUDA kernels build where a GPU can run their tests (or with
  # VOLT_ENABLE_CUDA=ON): elsewhere nvcc would spend minutes of every clean test
  # run on code no test there executes. The GPU machine's bundle
  # (scripts/device_bundle.sh) builds them in its own folder either way.
  cuda=${VOLT_ENABLE_CUDA:-}
  [ -n "$cuda" ] || { nvidia-smi -L >/dev/null 2>&1 && cuda=ON || cuda=OFF; }
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelNoDebInfo -DVOLT_ENABLE_CUDA="$cuda"
fi
# With VOLT_ASAN_BUILD_DIR set (scripts/test.sh sets it): the sanitizer build,
# CUDA off, with the fuzz targets (docs/TESTING.md).
asan_dir="${VOLT_ASAN_BUILD_DIR:-}"
if [ -n "$asan_dir" ] && [ ! -f "$asan_dir/CMakeCache.txt" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$asan_dir" -DCMAKE_BUILD_TYPE=Sanitize \
    -DVOLT_ENABLE_CUDA=OFF -DVOLT_FUZZ=ON
fi

# The metrics tests check our /metrics text with promtool, and the monitoring
# test runs a real Prometheus server against a node. Installing Debian's
# prometheus package would also start a Prometheus server on this machine, so
# only its two binaries are unpacked into each build folder.
dirs=("$build_dir")
[ -z "$asan_dir" ] || dirs+=("$asan_dir")
for dir in "${dirs[@]}"; do
  [ -x "$dir/tools/promtool" ] && [ -x "$dir/tools/prometheus" ] && continue
  mkdir -p "$dir/tools"
  if [ -x "$build_dir/tools/promtool" ] && [ -x "$build_dir/tools/prometheus" ]; then
    cp "$build_dir/tools/promtool" "$build_dir/tools/prometheus" "$dir/tools/"
    continue
  fi
  echo "setup: unpacking prometheus and promtool from Debian's prometheus package"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  unpack_dir=$(mktemp -d /tmp/volt-prometheus-XXXXXX)
  if ! (cd "$unpack_dir" && apt-get download prometheus >/dev/null 2>&1); then
    $sudo_cmd apt-get update -qq
    (cd "$unpack_dir" && apt-get download prometheus >/dev/null)
  fi
  dpkg-deb -x "$unpack_dir"/prometheus_*.deb "$unpack_dir/root"
  cp "$unpack_dir/root/usr/bin/promtool" "$unpack_dir/root/usr/bin/prometheus" "$dir/tools/"
  rm -rf "$unpack_dir"
done
