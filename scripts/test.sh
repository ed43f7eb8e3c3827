#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite in the main build (`build`, CUDA when nvcc
# is there): installs the Debian packages, starts a private redis-server on a free
# loopback port (stopped on exit), builds, installs the official OpenAI client for
# Node.js (npm package `openai`, pinned) for the http.openai_client test, runs ctest.
# With VOLT_ASAN_BUILD_DIR=build-asan it also builds the sanitizer folder (clang 14,
# AddressSanitizer and UndefinedBehaviorSanitizer, CUDA off) and runs the whole suite
# there too, with each fuzz target briefly, side by side with the main ctest, each
# against its own redis-server; their logs are printed one after the other
# (docs/TESTING.md says why CI does not do this yet).
# Idempotent; a second run reuses the builds. Extra arguments go to every ctest (e.g.
# -R config).
set -euo pipefail
cd "$(dirname "$0")/.."
export VOLT_ASAN_BUILD_DIR="${VOLT_ASAN_BUILD_DIR:-}"
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
[ -z "$VOLT_ASAN_BUILD_DIR" ] || dirs+=("$VOLT_ASAN_BUILD_DIR")

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
exit $status
