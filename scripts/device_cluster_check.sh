#!/usr/bin/env bash
# Runs on the GPU machine (device tool) with .device/ carried: a router whose
# step runs on cuda:0 ([model] device) and two workers whose experts run on
# cuda:0 ([worker] device, four experts each), over TCP on loopback, against a
# GPU standalone node and the CPU standalone answer, in bf16 and int8; then the
# same with the workers' experts in a GPU expert cache of half their size
# ([worker] gpu_expert_slots) fed by the router's predictions. Prints,
# per prompt, the relative error of the logits at every prompt position against
# the CPU and whether the router's greedy tokens equal the GPU standalone's.
set -uo pipefail
source "$(dirname "$0")/device_env.sh"
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
  # Runs the router + two workers cluster; tag names its answers. $1: tag,
  # $2: extra [worker] lines, $3: extra router sections.
  cluster() {
    local tag=$1 worker_extra=$2 router_extra=$3
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
$worker_extra
[metrics]
port = 982$w
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
$router_extra
[security]
insecure = true
TOML
    $node --config "$work/w1.toml" 2>"$work/w1.log" & w1=$!
    $node --config "$work/w2.toml" 2>"$work/w2.log" & w2=$!
    $node --config "$work/r.toml" 2>"$work/r.log" & r=$!
    for i in "${!prompts[@]}"; do
      $node generate --connect 127.0.0.1:7810 --prompt-ids "${prompts[$i]}" --max-new-tokens 12 \
        --json --all-logits --ignore-eos >"$work/${tag}_$i.json" 2>"$work/c.log" \
        || { cat "$work/c.log" "$work/r.log" "$work/w1.log"; }
    done
    # The workers' expert caches, where they have one.
    for w in 1 2; do
      curl -s "http://127.0.0.1:982$w/metrics" | grep -E "^voltinfer_expert_cache_(hits|misses|host_computed|bytes)_total" \
        | awk -v w="$w" -v tag="$tag" '{split($1, a, "{"); sum[a[1]] += $2}
            END {for (k in sum) printf "%s worker %s: %s %d\n", tag, w, k, sum[k]}' | sort
    done
    kill $r $w1 $w2; wait $r $w1 $w2 2>/dev/null
    grep -h "ready\|KV cache\|expert cache\|error" "$work/r.log" "$work/w1.log" | head -4
  }
  cluster router "" ""
  # Workers with half their experts on the device (one layer's four of
  # eight), the router's predictions riding along with the rows.
  cluster cached "gpu_expert_slots = 4" "[prefetch]
enabled = true
stage_experts = true"
  python3 - "$work" "$quant" "${#prompts[@]}" <<'PY'
import json, sys, math
work, quant, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def err(a, b):
    x = [v for row in a["all_logits"] for v in row]; y = [v for row in b["all_logits"] for v in row]
    return math.sqrt(sum((p - q) ** 2 for p, q in zip(y, x)) / sum(q * q for q in x))
for i in range(n):
    c, g, r, k = (json.load(open(f"{work}/{x}_{i}.json")) for x in ("cpu", "gpu", "router", "cached"))
    same = lambda a, b: '==' if a['new_tokens'] == b['new_tokens'] else '!='
    print(f"{quant}, prompt {i}: GPU standalone vs CPU {err(c, g):.2e}, GPU router vs CPU "
          f"{err(c, r):.2e}, router with cached workers vs CPU {err(c, k):.2e}; router tokens "
          f"{same(r, g)} GPU standalone tokens; cached workers' {same(k, g)}; GPU tokens "
          f"{same(g, c)} CPU tokens")
PY
done
rm -rf "$work"
