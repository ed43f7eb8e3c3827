#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite: installs the Debian packages, starts a
# private redis-server on a free loopback port (stopped on exit), builds, installs the
# official OpenAI client for Node.js (npm package `openai`, pinned) into the build folder
# for the http.openai_client test, runs ctest.
# Idempotent; a second run reuses the build. Extra arguments go to ctest (e.g. -R config).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh

redis_dir=$(mktemp -d /tmp/volt-redis-XXXXXX)
redis_pid=""
cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  rm -rf "$redis_dir"
}
trap cleanup EXIT

# A random high port; if another process holds it, redis-server exits and we try the next.
start_redis() {
  for _ in $(seq 20); do
    redis_port=$((20000 + RANDOM % 40000))
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$redis_dir" --daemonize no >"$redis_dir/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 50); do
      redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0
      kill -0 "$redis_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=""
  done
  echo "test: redis-server did not start"; cat "$redis_dir/redis.log"; return 1
}
start_redis
export VOLT_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"
echo "test: redis-server on $VOLT_TEST_REDIS_URL"

build_dir="${VOLT_BUILD_DIR:-build}"
# Needs the npm registry (or npm's cache); without the package http.openai_client fails
# and says so.
tests/http/install_openai.sh "$build_dir/npm" \
  || echo "test: npm could not install the openai package; http.openai_client will fail"

cd "$build_dir"
ctest --output-on-failure -j "$(nproc)" "$@"
