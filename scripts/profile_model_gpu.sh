#!/usr/bin/env bash
# Runs on the GPU machine (device tool) with .device/ carried: profiles one decode step (a
# graph replay at batch 1) and one prefill step of `volt-node bench model` with Nsight
# Compute, kernel by kernel, and prints where the time goes next to the step's host times.
#   scripts/profile_model_gpu.sh CHECKPOINT_DIR [PREFILL_TOKENS]
# The executor starts the profiler for the one step VOLT_PROFILE_STEP names ("ROWS,SKIP":
# the SKIP+1-th step of ROWS rows) and prints that step's enqueue and total host time.
# Writes ncu_decode.csv, ncu_prefill.csv and profile.txt under $OUT.
set -uo pipefail
source "$(dirname "$0")/device_env.sh"
ckpt=$1
prefill=${2:-2048}
ncu_flags=(--profile-from-start off --clock-control none --graph-profiling node
           --metrics gpu__time_duration.sum --csv --print-units base)

# Batch 1: the warm-up request decodes 3 one-row steps, the measured one 15; the
# 7th one-row step is a replay of the graph captured at the warm-up's shape.
VOLT_PROFILE_STEP=1,6 timeout 240 ncu "${ncu_flags[@]}" $node bench model --model "$ckpt" \
  --batch 1 --prompt 16 --decode-prompt 128 --new-tokens 16 \
  >"$OUT/ncu_decode.csv" 2>"$OUT/ncu_decode.err" || tail -n 5 "$OUT/ncu_decode.err"
# The second prefill of PREFILL_TOKENS rows (the first warms up).
VOLT_PROFILE_STEP=$prefill,1 timeout 240 ncu "${ncu_flags[@]}" $node bench model \
  --model "$ckpt" --batch 1 --prompt "$prefill" --decode-prompt 16 --new-tokens 2 \
  >"$OUT/ncu_prefill.csv" 2>"$OUT/ncu_prefill.err" || tail -n 5 "$OUT/ncu_prefill.err"
# The same steps without the profiler: host times only.
for spec in "1,6" "$prefill,1"; do
  VOLT_PROFILE_STEP=$spec timeout 120 $node bench model --model "$ckpt" --batch 1 \
    --prompt 16,"$prefill" --decode-prompt 128 --new-tokens 16 2>&1 \
    | grep -E "volt profile|prefill|batch" 
done >"$OUT/profile_host.txt"
python3 - "$OUT" <<'PY' | tee "$OUT/profile.txt"
import csv, collections, io, os, sys
out = sys.argv[1]
for name in ("decode", "prefill"):
    path = os.path.join(out, f"ncu_{name}.csv")
    text = open(path).read() if os.path.exists(path) else ""
    start = text.find('"ID"')
    if start < 0:
        print(f"{name}: no ncu rows (see ncu_{name}.err)")
        continue
    rows = [r for r in csv.DictReader(io.StringIO(text[start:])) if r.get("Metric Name") == "gpu__time_duration.sum"]
    by = collections.OrderedDict()
    for r in rows:
        k = r["Kernel Name"][:90]
        n, t = by.get(k, (0, 0.0))
        by[k] = (n + 1, t + float(r["Metric Value"].replace(",", "")) / 1e3)
    total = sum(t for _, t in by.values())
    print(f"== {name}: {len(rows)} kernels, {total:.1f} us of kernel time")
    for k, (n, t) in sorted(by.items(), key=lambda kv: -kv[1][1]):
        print(f"{t:10.1f} us {n:5d}x  {k}")
PY
cat "$OUT/profile_host.txt"
