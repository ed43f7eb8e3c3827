#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite in the main build (`build`, CUDA when nvcc
# is there and a GPU to run it): installs the Debian packages, starts a private
# redis-server on a free loopback port (stopped on exit), builds, installs the official
# OpenAI client for Node.js (npm package `openai`, pinned) for the http.openai_client
# test, runs ctest.
# Then the same suite again in the sanitizer folder (`build-asan`: clang 14,
# AddressSanitizer and UndefinedBehaviorSanitizer, CUDA off), against its own
# redis-server, and last the five fuzz targets there, a minute each (docs/TESTING.md).
# VOLT_ASAN_SUITE=0 runs only the fuzz targets in the sanitizer folder;
# VOLT_ASAN_BUILD_DIR= (empty) leaves the sanitizer folder out.
# Idempotent; a second run reuses the builds. Extra arguments go to every ctest (e.g.
# -R config).
set -euo pipefail
cd "$(dirname "$0")/.."
export VOLT_ASAN_BUILD_DIR="${VOLT_ASAN_BUILD_DIR-build-asan}"
export VOLT_ASAN_SUITE="${VOLT_ASAN_SUITE:-1}"
scripts/setup.sh
scripts/build.sh

work_dir=$(mktemp -d /tmp/volt-test-XXXXXX)
redis_pids=()
cleanup() {
  for pid in "${redis_pids[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$work_dir"
}
trap cleanup EXIT

# Starts a redis-server for one build folder's tests and sets redis_url. A random high
# port; if another process holds it, redis-server exits and we try the next.
start_redis() {
  local dir="$work_dir/redis-$1" port pid
  mkdir -p "$dir"
  for _ in $(seq 20); do
    port=$((20000 + RANDOM % 40000))
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$dir" --daemonize no >"$dir/redis.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do
      if redis-cli -p "$port" ping >/dev/null 2>&1; then
        redis_pids+=("$pid")
        redis_url="redis://127.0.0.1:$port"
        echo "test: redis-server for $1 on $redis_url"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "test: redis-server did not start"; cat "$dir/redis.log"; return 1
}

build_dir="${VOLT_BUILD_DIR:-build}"
dirs=("$build_dir")
[ -z "$VOLT_ASAN_BUILD_DIR" ] || [ "$VOLT_ASAN_SUITE" != 1 ] || dirs+=("$VOLT_ASAN_BUILD_DIR")

# Needs the npm registry (or npm's cache); without the package http.openai_client fails
# and says so. The sanitizer folder gets a copy.
if tests/http/install_openai.sh "$build_dir/npm"; then
  for dir in "${dirs[@]:1}"; do
    rm -rf "$dir/npm" && cp -a "$build_dir/npm" "$dir/npm"
  done
else
  echo "test: npm could not install the openai package; http.openai_client will fail"
fi

# One folder after the other (side by side on two cores, each folder's multi-process
# tests would run on a machine the other keeps busy), each against its own Redis (a
# router finds every worker registered there). UBSan prints where undefined behaviour
# happened.
status=0
for dir in "${dirs[@]}"; do
  start_redis "$dir"
  echo "test: ===== ctest in $dir ====="
  (cd "$dir" && VOLT_TEST_REDIS_URL="$redis_url" UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j "$(nproc)" -LE fuzz "$@") || status=1
done

# The fuzz targets, after the suites so that they do not load the machine under the
# suites' timing checks.
if [ -n "$VOLT_ASAN_BUILD_DIR" ]; then
  echo "test: ===== fuzz targets in $VOLT_ASAN_BUILD_DIR ====="
  (cd "$VOLT_ASAN_BUILD_DIR" && ctest -L fuzz --output-on-failure -j "$(nproc)" "$@") \
    || status=1
fi
exit $status
