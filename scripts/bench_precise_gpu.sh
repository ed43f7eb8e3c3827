#!/usr/bin/env bash
# Runs on the GPU machine (device tool) with .device/ carried (scripts/device_bundle.sh):
# the precise activations ([model] activations = "float32") against the bf16 default
# on a Mixtral-8x7B-shaped checkpoint of LAYERS layers (random bf16 weights, written
# by the team's tool): `volt-node bench model` with each, its decode steps at batch 1,
# 8 and 32, prefill of 512 and 2048 tokens, and the last position's logits of a
# 16-token prompt against the float32 CPU executor on the same checkpoint
# (--check-cpu). One summary line per run; the JSON and logs under $OUT.
#   scripts/bench_precise_gpu.sh [LAYERS]   (default 4)
set -uo pipefail
source "$(dirname "$0")/device_env.sh"
layers=${1:-4}
ckpt=${VOLT_BENCH_DIR:-/tmp/volt-precise}/L$layers
scripts/mixtral_checkpoint.sh "$ckpt" "$layers" "$OUT" || exit 1
for act in ${VOLT_BENCH_ACTIVATIONS:-bf16 float32}; do
  json="$OUT/precise_L${layers}_$act.json"
  timeout 300 $node bench model --model "$ckpt" --device cuda:0 --activations "$act" \
    --batch 1,8,32 --prompt 512,2048 --decode-prompt 128 --new-tokens 32 \
    --check-cpu 16 --json >"$json" 2>"${json%.json}.err" || tail -n 5 "${json%.json}.err"
  python3 - "$act" "$json" <<'PY'
import json, sys
act, path = sys.argv[1:]
try:
    d = json.load(open(path))
except Exception as e:
    print(act, "no result:", e); sys.exit()
dec = ", ".join(f"batch {r['batch']} {r['step_ms']:.3f} ms ({r['step_ms'] / r['floor_ms']:.2f}x floor)"
                for r in d["decode"])
pre = ", ".join(f"{p['tokens']} tokens {p['tokens_per_second']:.0f}/s" for p in d["prefill"])
print(f"activations {act}: logits vs the float32 CPU {d.get('cpu_logits_rel_error')}; "
      f"decode {dec}; prefill {pre}")
PY
done
