#!/usr/bin/env bash
# Long runs of the five fuzz targets (docs/TESTING.md, "Long runs").
#   scripts/fuzz_long.sh build            configures and builds them in build-fuzz/:
#                                         clang 14, ASan + UBSan as in build-asan/, but -O2
#   [VOLT_FUZZ_TARGETS="T:PROCESSES ..."] scripts/fuzz_long.sh run BIN OUT [SECONDS] [RUNS]
#                                         runs BIN/fuzz_<target> until each target has
#                                         executed RUNS inputs (default 10 million) or
#                                         SECONDS (default 3600) have passed; prints one
#                                         line per target and keeps what it found in OUT
# The processes of a target share one corpus, seeded as ctest seeds it; a target gets
# processes in proportion to how slow it is, 16 in all: on fewer cores they share them.
# Measured on one core of the development VM: safetensors and model_config about 20,000
# inputs/s, node_config 10,000, wire 4,500, openai_request 2,200.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = build ]; then
  flags="-O2 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
  [ -f build-fuzz/CMakeCache.txt ] \
    || CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Sanitize \
         -DVOLT_ENABLE_CUDA=OFF -DVOLT_FUZZ=ON -DBUILD_TESTING=OFF \
         "-DCMAKE_CXX_FLAGS_SANITIZE=$flags"
  cmake --build build-fuzz -j "$(nproc)" --target fuzz_targets
  exit 0
fi
[ "${1:-}" = run ] || { echo "usage: $0 build | run BIN OUT [SECONDS] [RUNS]" >&2; exit 2; }
bin=$(realpath "${2:?usage: $0 run BIN OUT [SECONDS] [RUNS]}")
out=$(realpath -m "${3:?usage: $0 run BIN OUT [SECONDS] [RUNS]}")
seconds=${4:-3600}
total_runs=${5:-10000000}
mkdir -p "$out"

targets=(safetensors model_config node_config wire openai_request)
declare -A processes=([safetensors]=1 [model_config]=1 [node_config]=2 [wire]=4
                      [openai_request]=8)
# VOLT_FUZZ_TARGETS="openai_request:16 wire:4" runs only those, with those processes.
if [ -n "${VOLT_FUZZ_TARGETS:-}" ]; then
  targets=()
  for spec in $VOLT_FUZZ_TARGETS; do
    targets+=("${spec%%:*}")
    processes[${spec%%:*}]=${spec#*:}
  done
fi
declare -A flags=([safetensors]="-max_len=65536")
data=tests/data
declare -A seeds=(
  [safetensors]="$data/tiny-mixtral-a/model.safetensors $data/tiny-mixtral-text-a/model.safetensors"
  [model_config]="$data/tiny-mixtral-a/config.json $data/tiny-mixtral-text-a/config.json
                  $data/tiny-mixtral-text-a/generation_config.json
                  $data/tiny-mixtral-text-a/tokenizer_config.json"
  [node_config]="config/examples/standalone.toml config/examples/router.toml
                 config/examples/worker.toml")

for t in "${targets[@]}"; do
  work="$out/$t"
  rm -rf "$work" && mkdir -p "$work/corpus"
  cp fuzz/corpus/fuzz_"$t"/* "$work/corpus/"
  for s in ${seeds[$t]:-}; do
    cp "$s" "$work/corpus/$(basename "$(dirname "$s")")-$(basename "$s")"
  done
  n=${processes[$t]}
  # -reload: each process picks up what the others added to the corpus.
  # shellcheck disable=SC2086
  (cd "$work" && "$bin/fuzz_$t" -jobs="$n" -workers="$n" \
     -runs=$(( (total_runs + n - 1) / n )) -max_total_time="$seconds" -timeout=60 \
     -rss_limit_mb=4096 -reload=1 -print_final_stats=1 -artifact_prefix="$work/" \
     ${flags[$t]:-} corpus >"$work/main.log" 2>&1) &
done
wait

status=0
for t in "${targets[@]}"; do
  work="$out/$t"
  runs=$(cat "$work"/fuzz-*.log | awk '/stat::number_of_executed_units/ {s += $2} END {print s + 0}')
  found=$(find "$work" -maxdepth 1 -regex '.*/\(crash\|oom\|timeout\|leak\)-.*' | wc -l)
  cov=$(grep -ho "cov: [0-9]*" "$work"/fuzz-*.log | sort -k2 -n | tail -1)
  echo "$t: $runs executions by ${processes[$t]} processes, $found findings, $cov," \
       "corpus $(find "$work/corpus" -type f | wc -l) inputs"
  [ "$found" = 0 ] && [ "$runs" -ge "$total_runs" ] || status=1
done
exit $status
