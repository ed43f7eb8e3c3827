#!/usr/bin/env bash
# What mutual TLS costs on node links, over loopback: (1) `volt-node bench link`, the round trip
# and throughput of byte payloads through a port guard and CAF's middleman, plaintext against
# TLS; (2) the round trip of one layer's expert batch to a real worker (`bench dispatch`), and
# decode speed through a router and a worker, each with plaintext links and with TLS.
# Certificates come from scripts/make_certs.sh into a temporary folder. Prints markdown.
# Usage: scripts/bench_tls.sh [MODEL_DIR] [NEW_TOKENS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
node="${VOLT_BUILD_DIR:-build}/apps/volt-node"
model="${1:-tests/data/tiny-mixtral-a}"
tokens="${2:-256}"
runs="${3:-5}"
[ -x "$node" ] || scripts/build.sh >/dev/null
work=$(mktemp -d /tmp/volt-bench-tls-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
scripts/make_certs.sh "$work/certs" node client >/dev/null
client_tls=(--tls-cert "$work/certs/client.pem" --tls-key "$work/certs/client-key.pem"
            --tls-ca "$work/certs/ca.pem")
security_toml() {
  if [ "$1" = tls ]; then
    printf '[security]\ntls_cert = "%s"\ntls_key = "%s"\ntls_ca = "%s"\n' \
      "$work/certs/node.pem" "$work/certs/node-key.pem" "$work/certs/ca.pem"
  else
    printf '[security]\ninsecure = true\n'
  fi
}
port() { echo $((20000 + RANDOM % 40000)); }

echo "### Node link over loopback: echo of byte payloads (\`volt-node bench link\`)"
echo
echo '```'
"$node" bench link "${client_tls[@]}"
echo '```'
echo

experts=$(sed -n 's/.*"num_local_experts": *\([0-9]*\).*/\1/p' "$model/config.json")
ids=$(seq -s, 0 $((experts - 1)))
vocab=$(sed -n 's/.*"vocab_size": *\([0-9]*\).*/\1/p' "$model/config.json")
prompt=$(for i in $(seq 0 39); do echo $(( (i * 37 + 11) % vocab )); done | paste -sd,)
decode_rate() { sed -n 's/.*"decode_tokens_per_second":\([0-9.]*\).*/\1/p'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A rport wport flags_of
for mode in plaintext tls; do
  wport[$mode]=$(port); rport[$mode]=$(port)
  { printf '[node]\nid = "bench-worker"\nrole = "worker"\n[network]\nport = %s\n' "${wport[$mode]}"
    printf '[model]\npath = "%s"\n[worker]\nexperts = [%s]\n' "$model" "$ids"
    security_toml "$mode"; } >"$work/worker-$mode.toml"
  { printf '[node]\nid = "bench-router"\nrole = "router"\n[network]\nport = %s\n' "${rport[$mode]}"
    printf '[model]\npath = "%s"\n[router]\nworkers = ["127.0.0.1:%s"]\n' "$model" "${wport[$mode]}"
    security_toml "$mode"; } >"$work/router-$mode.toml"
  : >"$work/router-$mode.log"
  "$node" --config "$work/worker-$mode.toml" 2>"$work/worker-$mode.log" & pids+=($!)
  "$node" --config "$work/router-$mode.toml" 2>"$work/router-$mode.log" & pids+=($!)
done
for mode in plaintext tls; do
  for _ in $(seq 300); do grep -q ready "$work/router-$mode.log" && break; sleep 0.1; done
  grep -q ready "$work/router-$mode.log" || { cat "$work/router-$mode.log"; exit 1; }
done
flags_of[plaintext]=""
flags_of[tls]="${client_tls[*]}"
for mode in plaintext tls; do
  echo "### Expert batch round trip to a worker, $mode links (\`bench dispatch\`)"
  echo
  echo '```'
  # shellcheck disable=SC2086 # the flags are paths without spaces
  "$node" bench dispatch --model "$model" --connect "127.0.0.1:${wport[$mode]}" --iters 2000 \
    ${flags_of[$mode]}
  echo '```'
  echo
done
# Alternating, so that a change in the machine's load falls on both.
declare -A rates
for _ in $(seq "$runs"); do
  for mode in plaintext tls; do
    # shellcheck disable=SC2086
    rates[$mode]+="$("$node" generate --connect "127.0.0.1:${rport[$mode]}" --prompt-ids "$prompt" \
      --max-new-tokens "$tokens" --ignore-eos --json ${flags_of[$mode]} | decode_rate)"$'\n'
  done
done
echo "### Decode through router + worker, $tokens new tokens after a 40-token prompt, median of $runs runs"
echo
echo "| links | decode tokens/s |"
echo "| --- | ---: |"
echo "| plaintext (\`[security] insecure = true\`) | $(echo -n "${rates[plaintext]}" | median) |"
echo "| mutual TLS | $(echo -n "${rates[tls]}" | median) |"
