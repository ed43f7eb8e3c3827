#!/usr/bin/env bash
# Runs on the GPU machine (device tool) with .device/ carried (scripts/device_bundle.sh):
# the expert cache on a Mixtral-8x7B-shaped checkpoint of LAYERS layers (random bf16
# weights, written by the team's tool, which also times transformers on it): `volt-node
# bench model` at batch 1 and 8 with (a) every expert resident, (b) half and a quarter
# of them in expert slots loaded on demand (least recently used evicted), (c) the same
# with the prefetch predictor on (the cache learns from the routing which experts follow
# which and evicts by that); and the pinned host-to-device copy rate, the
# bound of a miss. Random weights route at random, so the same runs follow with the
# routing of real text: a trace recorded on tests/data/tiny-mixtral-text-a over Python
# source it did not see in training, replayed by `volt-node bench prefetch
# --routing-trace` (its tokens are the input, its experts replace the routers' choice;
# the checkpoint's 8 layers repeat the trace's 4). One summary line per run; the JSON and
# logs of every run so far packed in $OUT/bench_expert_cache.tgz after each run (a device
# call that runs out of time still returns them, and as one file).
# `tuning` adds runs with the predictor staging its guesses. `prefetch` runs only the
# trace's learned-eviction rows (misses copied), `host` the same with misses the cache
# does not keep computed on the host ([worker] expert_misses = "auto"). Every other row
# copies its misses, as (b) and (c) did before the host could compute them.
#   scripts/bench_expert_cache.sh [LAYERS] [random] [trace] [prefetch] [host] [tuning]
#                                 (default: 8 random trace)
# VOLT_BENCH_SHAPES ("1:48 8:96": batch:window) and VOLT_BENCH_SHARES ("2 4": a half
# and a quarter resident) narrow the trace rows to fit a device call.
set -uo pipefail
source "$(dirname "$0")/device_env.sh"
work=${VOLT_BENCH_WORK:-/tmp/volt-cache-work}
rm -rf "$work" && mkdir -p "$work"
pack() { tar -czf "$OUT/bench_expert_cache.tgz" -C "$work" .; }
layers=${1:-8}
shift || true
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(random trace)
has() { local s; for s in "${steps[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
ckpt=${VOLT_BENCH_DIR:-/tmp/volt-cache}/L$layers
scripts/mixtral_checkpoint.sh "$ckpt" "$layers" "$work" || exit 1
python3 - <<'PY' | tee "$work/h2d.txt"
import torch, time
x = torch.empty(1 << 30, dtype=torch.uint8).pin_memory()
y = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
for _ in range(2):
    torch.cuda.synchronize(); t = time.time(); y.copy_(x, non_blocking=True); torch.cuda.synchronize()
print(f"pinned host to device: {x.numel() / (time.time() - t) / 1e9:.1f} GB/s")
PY
pack
total=$((layers * 8))
runs=("resident:0:" "lru50:$((total / 2)):" "prefetch50:$((total / 2)):--prefetch"
      "lru25:$((total / 4)):" "prefetch25:$((total / 4)):--prefetch")
for run in "${runs[@]}"; do
  has random || break
  IFS=: read -r name slots flag <<<"$run"
  misses=(); [ "$slots" -gt 0 ] && misses=(--expert-misses load)
  timeout 240 $node bench model --model "$ckpt" --device cuda:0 --batch 1,8 --prompt 16 \
    --decode-prompt 32 --new-tokens 32 --expert-slots "$slots" $flag "${misses[@]}" --json \
    >"$work/cache_$name.json" 2>"$work/cache_$name.err" || tail -n 3 "$work/cache_$name.err"
  python3 - "$name" "$work/cache_$name.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[2]))
except Exception as e:
    print(sys.argv[1], "no result:", e); sys.exit()
for r in d["decode"]:
    extra = ""
    if "cache_hit_rate" in r:
        extra = (f", hits {100 * r['cache_hit_rate']:.1f} %, {r['cache_gb_per_step']:.3f} GB"
                 f" and {r['cache_stall_ms_per_step']:.2f} ms stalled per step")
    print(f"{sys.argv[1]:>11} batch {r['batch']}: {r['step_ms']:.3f} ms/step"
          f" ({1000 * r['batch'] / r['step_ms']:.1f} tokens/s){extra}")
PY
  pack
done

{ has trace || has prefetch || has host || has tuning; } || exit 0
trace="$work/trace_text_a.json"
$node bench prefetch --model tests/data/tiny-mixtral-text-a \
  --text tests/data/unseen-python/volt_scripts.py.txt --tokens 4096 \
  --record-routing "$trace" --json >"$work/trace_record.json" 2>"$work/trace_record.err" \
  || { tail -n 3 "$work/trace_record.err"; exit 1; }
# Batch 1 decodes 8 sequences of 48 tokens one after the other, batch 8 eight of 96
# together: a few hundred steps each, enough for the predictor to learn online.
trace_run() { # NAME SLOTS [bench prefetch flags]
  local name=$1 slots=$2 shape batch window json
  shift 2
  for shape in ${VOLT_BENCH_SHAPES:-1:48 8:96}; do
    IFS=: read -r batch window <<<"$shape"
    json="$work/trace_${name}_b$batch.json"
    timeout 240 $node bench prefetch --model "$ckpt" --device cuda:0 \
      --routing-trace "$trace" --batch "$batch" --window "$window" \
      --tokens $((8 * window)) --expert-slots "$slots" "$@" --json \
      >"$json" 2>"${json%.json}.err" || tail -n 3 "${json%.json}.err"
    python3 - "$name" "$batch" "$json" <<'PY'
import json, sys
name, batch, path = sys.argv[1:]
try:
    d = json.load(open(path))
except Exception as e:
    print(name, "batch", batch, "no result:", e); sys.exit()
line = (f"trace {name:>14} batch {batch}: {d['step_us'] / 1000:.3f} ms/step"
        f" ({d['tokens_per_second']:.1f} tokens/s)")
c = d.get("expert_cache")
if c:
    o = c["overall"]
    steps_s = d["step_us"] * d["steps"] / 1e6
    per = 352e6 * d["steps"]
    line += (f", hits {100 * o['hit_rate']:.1f} %, experts copied per step {o['staged_bytes'] / per:.2f}"
             f" staged + {o['loaded_bytes'] / per:.2f} on misses,"
             f" on the host {o.get('host_computed', 0) / d['steps']:.2f},"
             f" stalls {o['stall_seconds']:.2f} s ({100 * o['stall_seconds'] / steps_s:.0f} % of the steps)")
comb = d["predictors"]["combined"]["overall"]
line += f"; predictor recall {comb['recall']:.3f}, precision {comb['precision']:.3f}"
print(line)
PY
    pack
  done
}
# Half resident first, then a quarter (a device call may end before the last).
for share in ${VOLT_BENCH_SHARES:-2 4}; do
  pct=$((100 / share))
  if has trace; then
    trace_run lru$pct $((total / share)) --lru --expert-misses load
  fi
  if has trace || has prefetch; then
    trace_run learned$pct $((total / share)) --expert-misses load
  fi
  if has trace || has host; then
    trace_run host$pct $((total / share))
  fi
  if has trace && [ "$share" = 2 ]; then
    trace_run resident 0
  fi
done
# The predictor staging what it expects ([prefetch] stage_experts): by default
# (min_chance 10 %, at most 2 x top-k per layer), at min_chance 50 %, and at most
# top-k per layer. The bus is the bound, and a wrong guess costs as much of it as a
# miss.
if has tuning; then
  trace_run staged50 $((total / 2)) --stage --expert-misses load
  trace_run staged50-c50 $((total / 2)) --stage --min-chance-percent 50 --expert-misses load
  trace_run staged50-s2 $((total / 2)) --stage --max-staged 2 --expert-misses load
fi
