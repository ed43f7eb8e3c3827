#!/usr/bin/env bash
# Distribution over loopback: starts one worker (all experts) and a router on
# free ports, then measures (1) the round trip of one layer's expert batch,
# in-process against over TCP (`volt-node bench dispatch`), and (2) end-to-end
# decode speed of a standalone run against router + worker, with the tensor
# payload bytes per token from the router's metrics. Prints markdown tables. Plaintext
# links (comparable with the earlier tables); scripts/bench_tls.sh measures mutual TLS.
# Usage: scripts/bench_cluster.sh [MODEL_DIR] [NEW_TOKENS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
node="${VOLT_BUILD_DIR:-build}/apps/volt-node"
model="${1:-tests/data/tiny-mixtral-a}"
tokens="${2:-256}"
runs="${3:-7}"
[ -x "$node" ] || scripts/build.sh >/dev/null
work=$(mktemp -d /tmp/volt-bench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port() { echo $((20000 + RANDOM % 40000)); }
wport=$(port); rport=$(port); mport=$(port)
experts=$(sed -n 's/.*"num_local_experts": *\([0-9]*\).*/\1/p' "$model/config.json")
ids=$(seq -s, 0 $((experts - 1)))
cat >"$work/worker.toml" <<TOML
[node]
id = "bench-worker"
role = "worker"
[network]
port = $wport
[model]
path = "$model"
[worker]
experts = [$ids]
[security]
insecure = true
TOML
cat >"$work/router.toml" <<TOML
[node]
id = "bench-router"
role = "router"
[network]
port = $rport
[model]
path = "$model"
[router]
workers = ["127.0.0.1:$wport"]
[metrics]
port = $mport
[security]
insecure = true
TOML
: >"$work/router.log"
"$node" --config "$work/worker.toml" 2>"$work/worker.log" & pids+=($!)
"$node" --config "$work/router.toml" 2>"$work/router.log" & pids+=($!)
for _ in $(seq 100); do grep -q ready "$work/router.log" && break; sleep 0.1; done
grep -q ready "$work/router.log" || { cat "$work/router.log"; exit 1; }

echo "### Expert batch round trip (one layer, one hosting node)"
echo
echo '```'
"$node" bench dispatch --model "$model" --connect "127.0.0.1:$wport" --iters 3000
echo '```'
echo

vocab=$(sed -n 's/.*"vocab_size": *\([0-9]*\).*/\1/p' "$model/config.json")
prompt=$(for i in $(seq 0 39); do echo $(( (i * 37 + 11) % vocab )); done | paste -sd,)
decode_rate() { sed -n 's/.*"decode_tokens_per_second":\([0-9.]*\).*/\1/p'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
local_rates=""; cluster_rates=""
for _ in $(seq "$runs"); do
  local_rates+="$("$node" generate --model "$model" --prompt-ids "$prompt" \
    --max-new-tokens "$tokens" --ignore-eos --json | decode_rate)"$'\n'
  cluster_rates+="$("$node" generate --connect "127.0.0.1:$rport" --prompt-ids "$prompt" \
    --max-new-tokens "$tokens" --ignore-eos --json | decode_rate)"$'\n'
done
# The router's payload counter, read over plain bash TCP (no curl needed).
sent=$(exec 3<>"/dev/tcp/127.0.0.1/$mport"; printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
       cat <&3 | sed -n 's/^voltinfer_peer_bytes_sent_total{[^}]*} \(.*\)/\1/p' | head -1)
generated=$(( runs * tokens ))
layers=$(sed -n 's/.*"num_hidden_layers": *\([0-9]*\).*/\1/p' "$model/config.json")
echo "### Decode, $tokens new tokens after a 40-token prompt, median of $runs runs"
echo
echo "| setup | decode tokens/s |"
echo "| --- | --- |"
echo "| standalone (one process) | $(echo -n "$local_rates" | median) |"
echo "| router + 1 worker over loopback TCP | $(echo -n "$cluster_rates" | median) |"
echo
echo "Payload sent by the router: $sent bytes for $generated generated tokens plus $runs prompts"
echo "($layers layers; each decode step sends top-k rows of hidden floats per layer and gets as many back)."
