#!/usr/bin/env bash
# Runs on the GPU machine (device tool) with .device/ carried: a worker whose
# experts run on cuda:0 ([worker] device) behind a router, against the CPU
# standalone answer, in bf16 and int8. Prints the relative error of the logits
# at every prompt position and whether the greedy tokens agree.
set -uo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH="$PWD/.device/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
node=.device/bin/volt-node
model=tests/data/tiny-mixtral-a
work=$(mktemp -d)
prompt=$(python3 -c "print(','.join(str((i*37+11)%320) for i in range(40)))")
$node generate --model $model --prompt-ids "$prompt" --max-new-tokens 12 --json --all-logits \
  >"$work/cpu.json"
for quant in none int8; do
  cat >"$work/w.toml" <<TOML
[node]
id = "gpu-worker"
role = "worker"
[network]
port = 7811
[model]
path = "$model"
quantization = "$quant"
[worker]
experts = [0, 1, 2, 3, 4, 5, 6, 7]
device = "cuda:0"
TOML
  cat >"$work/r.toml" <<TOML
[node]
id = "router"
role = "router"
[network]
port = 7810
[model]
path = "$model"
[router]
workers = ["127.0.0.1:7811"]
TOML
  $node --config "$work/w.toml" 2>"$work/w.log" & wpid=$!
  $node --config "$work/r.toml" 2>"$work/r.log" & rpid=$!
  $node generate --connect 127.0.0.1:7810 --prompt-ids "$prompt" --max-new-tokens 12 --json \
    --all-logits >"$work/gpu_$quant.json" 2>"$work/c.log" || { cat "$work/c.log" "$work/w.log"; }
  kill $rpid $wpid; wait $rpid $wpid 2>/dev/null
  grep -h "ready\|cuda\|error" "$work/w.log" | head -3
  python3 - "$work/cpu.json" "$work/gpu_$quant.json" "$quant" <<'PY'
import json, sys, math
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
x = [v for row in a["all_logits"] for v in row]; y = [v for row in b["all_logits"] for v in row]
err = math.sqrt(sum((p - q) ** 2 for p, q in zip(y, x)) / sum(q * q for q in x))
print(f"worker on cuda:0, quantization={sys.argv[3]}: all-logits relative error vs CPU "
      f"{err:.2e}; greedy tokens {'identical' if a['new_tokens'] == b['new_tokens'] else 'differ'}: "
      f"{b['new_tokens']}")
PY
done
rm -rf "$work"
