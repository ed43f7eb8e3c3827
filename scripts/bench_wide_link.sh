#!/usr/bin/env bash
# What Mixtral-wide expert rows cost on a node link, on the CPU. Writes the
# wide checkpoint (scripts/wide_checkpoint.py: hidden 4096, so 16 KiB per row
# as Mixtral-8x7B's, with experts the CPU computes quickly), then for each
# volt-node binary given, ROUNDS times in turn: a worker hosting all 8 experts
# and a router on loopback, `volt-node bench model --connect` against the
# router (prefill 512 and 2048 tokens, decode batch 1 and 8), and the same
# binary's standalone run in one process for comparison. Comparing two builds
# (before and after a change) alternately is what docs/PERFORMANCE.md's
# "Mixtral-wide expert rows" section did.
#   scripts/bench_wide_link.sh [ROUNDS] [VOLT_NODE...]   (1, build/apps/volt-node)
# Knobs: VOLT_BENCH_CHUNK (the router's [engine] prefill_chunk, 512),
# VOLT_BENCH_BUSY_POLL_US (the worker's [network] busy_poll_us, 0; a binary
# older than that key cannot take a non-zero value), VOLT_BENCH_DIR (where
# the checkpoint goes, /tmp/volt-wide).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
shift || true
nodes=("$@")
[ ${#nodes[@]} -gt 0 ] || nodes=(build/apps/volt-node)
chunk=${VOLT_BENCH_CHUNK:-512}
busy=${VOLT_BENCH_BUSY_POLL_US:-0}
model=${VOLT_BENCH_DIR:-/tmp/volt-wide}
[ -f "$model/model.safetensors" ] || scripts/wide_checkpoint.py "$model"
work=$(mktemp -d /tmp/volt-wide-link-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port() { echo $((20000 + RANDOM % 40000)); }
# wait_ready LOG: until the node logs its "ready: " line (30 s at most).
wait_ready() {
  for _ in $(seq 300); do
    grep -q "ready: " "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no ready line in $1:"; tail -n 5 "$1"; return 1
}
busy_line=""
[ "$busy" != 0 ] && busy_line="busy_poll_us = $busy"
for round in $(seq "$rounds"); do
  for node in "${nodes[@]}"; do
    wport=$(port); rport=$(port)
    cat >"$work/worker.toml" <<TOML
[node]
id = "wide-worker"
role = "worker"
[network]
port = $wport
$busy_line
[model]
path = "$model"
[worker]
experts = [0, 1, 2, 3, 4, 5, 6, 7]
[security]
insecure = true
TOML
    cat >"$work/router.toml" <<TOML
[node]
id = "wide-router"
role = "router"
[network]
port = $rport
[model]
path = "$model"
[router]
workers = ["127.0.0.1:$wport"]
[engine]
prefill_chunk = $chunk
max_batch = 8
[kv_cache]
num_pages = 1024
[security]
insecure = true
TOML
    echo "== round $round: $node (prefill_chunk $chunk, worker busy_poll_us $busy)"
    "$node" --config "$work/worker.toml" 2>"$work/worker.log" &
    wp=$!; pids+=("$wp")
    wait_ready "$work/worker.log"
    "$node" --config "$work/router.toml" 2>"$work/router.log" &
    rp=$!; pids+=("$rp")
    wait_ready "$work/router.log"
    echo "router + worker:"
    "$node" bench model --model "$model" --connect "127.0.0.1:$rport" \
      --batch 1,8 --prompt 512,2048 --decode-prompt 16 --new-tokens 32 2>&1 |
      grep -E "prefill|decode" | sed 's/, floor.*experts\/layer//'
    kill "$wp" "$rp" 2>/dev/null || true
    wait "$wp" "$rp" 2>/dev/null || true
    echo "one process:"
    "$node" bench model --model "$model" --device cpu --batch 1,8 \
      --prompt 512,2048 --decode-prompt 16 --new-tokens 32 2>&1 |
      grep -E "prefill|decode" | sed 's/, floor.*experts\/layer//'
  done
done
