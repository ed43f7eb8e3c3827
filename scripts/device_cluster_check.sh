#!/usr/bin/env bash
# Runs on the GPU machine (device tool) with .device/ carried: a router whose
# step runs on cuda:0 ([model] device) and two workers whose experts run on
# cuda:0 ([worker] device, four experts each), over TCP on loopback, against a
# GPU standalone node and the CPU standalone answer, in bf16 and int8. Prints,
# per prompt, the relative error of the logits at every prompt position against
# the CPU and whether the router's greedy tokens equal the GPU standalone's.
set -uo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH="$PWD/.device/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
node=.device/bin/volt-node
model=${1:-tests/data/tiny-mixtral-a}
work=$(mktemp -d)
vocab=$(python3 -c "import json; print(json.load(open('$model/config.json'))['vocab_size'])")
prompts=()
for n in 1 17 40; do
  prompts+=("$(python3 -c "print(','.join(str((i*37+11)%$vocab) for i in range($n)))")")
done
for quant in none int8; do
  for i in "${!prompts[@]}"; do
    $node generate --model $model --prompt-ids "${prompts[$i]}" --max-new-tokens 12 --json \
      --all-logits --ignore-eos >"$work/cpu_$i.json"
    $node generate --model $model --device cuda:0 --quantization $quant \
      --prompt-ids "${prompts[$i]}" --max-new-tokens 12 --json --all-logits --ignore-eos \
      >"$work/gpu_$i.json" 2>"$work/g.log" || cat "$work/g.log"
  done
  for w in 1 2; do
    experts=$([ $w = 1 ] && echo "0, 1, 2, 3" || echo "4, 5, 6, 7")
    cat >"$work/w$w.toml" <<TOML
[node]
id = "gpu-worker-$w"
role = "worker"
[network]
port = 781$w
[model]
path = "$model"
quantization = "$quant"
[worker]
experts = [$experts]
device = "cuda:0"
[security]
insecure = true
TOML
  done
  cat >"$work/r.toml" <<TOML
[node]
id = "router"
role = "router"
[network]
port = 7810
[model]
path = "$model"
device = "cuda:0"
[router]
workers = ["127.0.0.1:7811", "127.0.0.1:7812"]
[security]
insecure = true
TOML
  $node --config "$work/w1.toml" 2>"$work/w1.log" & w1=$!
  $node --config "$work/w2.toml" 2>"$work/w2.log" & w2=$!
  $node --config "$work/r.toml" 2>"$work/r.log" & r=$!
  for i in "${!prompts[@]}"; do
    $node generate --connect 127.0.0.1:7810 --prompt-ids "${prompts[$i]}" --max-new-tokens 12 \
      --json --all-logits --ignore-eos >"$work/router_$i.json" 2>"$work/c.log" \
      || { cat "$work/c.log" "$work/r.log" "$work/w1.log"; }
  done
  kill $r $w1 $w2; wait $r $w1 $w2 2>/dev/null
  grep -h "ready\|KV cache\|error" "$work/r.log" | head -3
  python3 - "$work" "$quant" "${#prompts[@]}" <<'PY'
import json, sys, math
work, quant, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def err(a, b):
    x = [v for row in a["all_logits"] for v in row]; y = [v for row in b["all_logits"] for v in row]
    return math.sqrt(sum((p - q) ** 2 for p, q in zip(y, x)) / sum(q * q for q in x))
for i in range(n):
    c, g, r = (json.load(open(f"{work}/{k}_{i}.json")) for k in ("cpu", "gpu", "router"))
    print(f"{quant}, prompt {i}: GPU standalone vs CPU {err(c, g):.2e}, GPU router vs CPU "
          f"{err(c, r):.2e}; router tokens {'==' if r['new_tokens'] == g['new_tokens'] else '!='} "
          f"GPU standalone tokens; GPU tokens {'==' if g['new_tokens'] == c['new_tokens'] else '!='} CPU tokens")
PY
done
rm -rf "$work"
