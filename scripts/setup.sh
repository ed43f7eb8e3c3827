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

build_dir="${VOLT_BUILD_DIR:-build}"
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi

# The metrics tests check our /metrics text with promtool, and the monitoring
# test runs a real Prometheus server against a node. Installing Debian's
# prometheus package would also start a Prometheus server on this machine, so
# only its two binaries are unpacked into the build folder.
if [ ! -x "$build_dir/tools/promtool" ] || [ ! -x "$build_dir/tools/prometheus" ]; then
  echo "setup: unpacking prometheus and promtool from Debian's prometheus package"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  unpack_dir=$(mktemp -d /tmp/volt-prometheus-XXXXXX)
  if ! (cd "$unpack_dir" && apt-get download prometheus >/dev/null 2>&1); then
    $sudo_cmd apt-get update -qq
    (cd "$unpack_dir" && apt-get download prometheus >/dev/null)
  fi
  dpkg-deb -x "$unpack_dir"/prometheus_*.deb "$unpack_dir/root"
  mkdir -p "$build_dir/tools"
  cp "$unpack_dir/root/usr/bin/promtool" "$unpack_dir/root/usr/bin/prometheus" "$build_dir/tools/"
  rm -rf "$unpack_dir"
fi
