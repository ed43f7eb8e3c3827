#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite in the main build (`build`, CUDA when nvcc
# is there): installs the Debian packages, starts a private redis-server on a free
# loopback port (stopped on exit), builds, installs the official OpenAI client for
# Node.js (npm package `openai`, pinned) for the http.openai_client test, runs ctest.
# Then builds the five fuzz targets in the sanitizer folder (`build-asan`: clang 14,
# AddressSanitizer and UndefinedBehaviorSanitizer, CUDA off) and runs each briefly.
# VOLT_ASAN_SUITE=1 runs the whole suite in the sanitizer folder too, side by side with
# the main ctest, each against its own redis-server (docs/TESTING.md says why CI does
# not); VOLT_ASAN_BUILD_DIR= (empty) leaves the sanitizer folder out.
# Idempotent; a second run reuses the builds. Extra arguments go to every ctest (e.g.
# -R config).
set -euo pipefail
cd "$(dirname "$0")/.."
export VOLT_ASAN_BUILD_DIR="${VOLT_ASAN_BUILD_DIR-build-asan}"
export VOLT_ASAN_SUITE="${VOLT_ASAN_SUITE:-0}"
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

# Each folder's ctest against its own Redis (a router finds every worker registered
# there), in the background; UBSan prints where undefined behaviour happened.
pids=()
for dir in "${dirs[@]}"; do
  start_redis "$dir"
  name=$(basename "$dir")
  echo "test: ctest in $dir (log: $work_dir/$name.log)"
  (cd "$dir" && VOLT_TEST_REDIS_URL="$redis_url" UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j "$(nproc)" "$@" >"$work_dir/$name.log" 2>&1) &
  pids+=($!)
done
status=0
for i in "${!dirs[@]}"; do
  wait "${pids[$i]}" || status=1
  echo "test: ===== ctest in ${dirs[$i]} ====="
  cat "$work_dir/$(basename "${dirs[$i]}").log"
done

# The fuzz targets, after the suites so that they do not load the machine under the
# suites' timing checks (with VOLT_ASAN_SUITE=1 they ran in that folder's ctest).
if [ -n "$VOLT_ASAN_BUILD_DIR" ] && [ "$VOLT_ASAN_SUITE" != 1 ]; then
  echo "test: ===== fuzz targets in $VOLT_ASAN_BUILD_DIR ====="
  (cd "$VOLT_ASAN_BUILD_DIR" && ctest -L fuzz --output-on-failure -j "$(nproc)" "$@") \
    || status=1
fi
exit $status
