#!/usr/bin/env bash
# Runs on the GPU machine (device tool) with .device/ carried (scripts/device_bundle.sh):
# a decode step's launch choices on a Mixtral-8x7B-shaped checkpoint of LAYERS layers
# (random bf16 weights, written by the team's tool), bf16 and int8 experts: the dense
# projections (attention q/k/v and o, LM head) through cuBLAS or the experts' decode
# kernel (`bench model --dense-decode-rows 0 | 32`), the step's kernels launched plainly
# or chained to the kernel ahead (`--chained-launch off | on`). Decode at batch 1, 8
# and 32, prefill of 512 and 2048 tokens, and with the defaults the last position's
# logits of a 16-token prompt against the float32 CPU executor. One summary line per
# run and the int8 / bf16 step ratios; the JSON and logs under $OUT.
#   scripts/bench_decode_launch_gpu.sh [LAYERS]   (default 4)
# VOLT_BENCH_RUNS ("QUANT:ROWS:CHAINED ..."), VOLT_BENCH_PROMPTS ("512") and
# VOLT_BENCH_CHECK=0 (no CPU comparison) narrow it to fit a device call.
set -uo pipefail
source "$(dirname "$0")/device_env.sh"
layers=${1:-4}
ckpt=${VOLT_BENCH_DIR:-/tmp/volt-launch}/L$layers
scripts/mixtral_checkpoint.sh "$ckpt" "$layers" "$OUT" || exit 1
# quantization:dense rows:chained
runs=${VOLT_BENCH_RUNS:-"none:0:off none:32:on int8:0:off int8:32:on none:0:on none:32:off"}
for run in $runs; do
  IFS=: read -r quant rows chained <<<"$run"
  name="launch_L${layers}_${quant}_dense${rows}_chained-$chained"
  check=0
  [ "$quant:$rows:$chained" = "none:32:on" ] && check=${VOLT_BENCH_CHECK:-16}
  timeout 240 $node bench model --model "$ckpt" --device cuda:0 --quantization "$quant" \
    --dense-decode-rows "$rows" --chained-launch "$chained" \
    --batch 1,8,32 --prompt "${VOLT_BENCH_PROMPTS:-512,2048}" --decode-prompt 128 --new-tokens 32 \
    --check-cpu $check --json >"$OUT/$name.json" 2>"$OUT/$name.err" \
    || tail -n 5 "$OUT/$name.err"
done
python3 - "$OUT" "$layers" <<'PY'
import glob, json, os, sys
out, layers = sys.argv[1:]
rows = {}
for path in sorted(glob.glob(f"{out}/launch_L{layers}_*.json")):
    name = os.path.basename(path)[len(f"launch_L{layers}_"):-5]
    try:
        d = json.load(open(path))
    except Exception as e:
        print(name, "no result:", e)
        continue
    rows[name] = d
    dec = ", ".join(f"b{r['batch']} {r['step_ms']:.3f} ms ({r['step_ms'] / r['floor_ms']:.2f}x)"
                    for r in d["decode"])
    pre = ", ".join(f"{p['tokens']}: {p['tokens_per_second']:.0f}/s" for p in d["prefill"])
    check = d.get("cpu_logits_rel_error")
    print(f"{name}: decode {dec}; prefill {pre}" + (f"; logits vs CPU {check:.3g}" if check else ""))
# Chaining changes no arithmetic: its tokens must be the plain launch's. The
# decode kernel sums the projections in another order than cuBLAS.
for quant in ("none", "int8"):
    base = rows.get(f"{quant}_dense0_chained-off")
    for name, d in rows.items():
        if base and name.startswith(quant + "_") and d is not base:
            same = [x["new_tokens"] == y["new_tokens"] for x, y in zip(base["decode"], d["decode"])]
            print(f"{name}: decode tokens as the plain cuBLAS run's at batch "
                  + ", ".join(f"{r['batch']}: {'yes' if ok else 'no'}" for r, ok in zip(d["decode"], same)))
for variant in ("dense0_chained-off", "dense32_chained-on"):
    b, i = rows.get(f"none_{variant}"), rows.get(f"int8_{variant}")
    if b and i:
        ratio = ", ".join(f"b{x['batch']} {y['step_ms'] / x['step_ms']:.3f}"
                          for x, y in zip(b["decode"], i["decode"]))
        print(f"int8 / bf16 step, {variant}: {ratio}")
PY
