#!/usr/bin/env bash
# Runs one fuzz target; fuzz/CMakeLists.txt registers each as ctest `fuzz.<name>`.
#   run_fuzzer.sh BINARY SECONDS WORKDIR SEED...
# SEEDs are files, or folders of files (fuzz/corpus/<name>, fixtures of
# tests/data). The run starts from a fresh copy of them in WORKDIR/seeds; what
# it finds goes to WORKDIR/corpus, and an input that crashes or breaks a check
# is kept as WORKDIR/crash-* (make it a regression test). Extra libFuzzer flags
# come from VOLT_FUZZ_FLAGS and win over the defaults, e.g.
# VOLT_FUZZ_FLAGS="-max_total_time=0 -runs=10000000" for a long run.
set -euo pipefail
binary=${1:?usage: run_fuzzer.sh BINARY SECONDS WORKDIR SEED...}
seconds=${2:?}
work=${3:?}
shift 3
rm -rf "$work/seeds" "$work/corpus"
mkdir -p "$work/seeds" "$work/corpus"
for seed in "$@"; do
  if [ -d "$seed" ]; then
    cp "$seed"/* "$work/seeds/"
  else
    # Fixtures share names (config.json): keep their folder in the name.
    cp "$seed" "$work/seeds/$(basename "$(dirname "$seed")")-$(basename "$seed")"
  fi
done
# -timeout: one input may take this long on a loaded machine before it counts
# as a hang. -max_len: libFuzzer's default 4096 unless a target sets more.
# shellcheck disable=SC2086
exec "$binary" -max_total_time="$seconds" -timeout=60 -print_final_stats=1 \
  -artifact_prefix="$work/" ${VOLT_FUZZ_TARGET_FLAGS:-} ${VOLT_FUZZ_FLAGS:-} \
  "$work/corpus" "$work/seeds"
