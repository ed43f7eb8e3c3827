#!/usr/bin/env bash
# Runs on the GPU machine (device tool) with .device/ carried (scripts/device_bundle.sh):
# writes a Mixtral-8x7B-shaped checkpoint per layer count (random bf16 weights,
# hub layout) with the team's tool, which also times transformers on it (eager,
# and a static cache + torch.compile); then times reading the files once from
# the page cache and runs `volt-node bench model` on the same checkpoint and card
# (bf16 experts, and int8 on the first); transformers' prefill is timed on the same
# files (scripts/bench_torch_prefill.py). Prints one table; JSON under $OUT.
#   scripts/bench_model_gpu.sh [LAYERS ...]   (default: 4 8)
set -uo pipefail
source "$(dirname "$0")/device_env.sh"
tool=.device/tools/mixtral_shape_checkpoint.py
layers=("$@")
[ ${#layers[@]} -eq 0 ] && layers=(4 8)
work=${VOLT_BENCH_DIR:-/tmp/volt-mixtral}
prompt=${VOLT_BENCH_PROMPT:-32}
first=1
for l in "${layers[@]}"; do
  ckpt="$work/L$l"
  rm -rf "$work"; mkdir -p "$work"
  echo "== $l layers: writing the checkpoint and timing transformers"
  PYTHONUNBUFFERED=1 timeout 420 python3 "$tool" "$ckpt" "$l" "$prompt" 64 \
    >"$OUT/hf_L$l.json" 2>"$OUT/hf_L$l.err" || tail -n 5 "$OUT/hf_L$l.err"
  sync
  # Reading the files once from the page cache (they were just written).
  python3 - "$ckpt" <<'PY' | tee "$OUT/read_L$l.txt"
import glob, subprocess, sys, time
files = sorted(glob.glob(sys.argv[1] + "/*.safetensors"))
t = time.time()
subprocess.run(["cat"] + files, stdout=subprocess.DEVNULL, check=True)
print(f"read once from the page cache (cat): {time.time() - t:.3f} s")
PY
  # transformers' prefill on the same files (the tool above times decode only).
  timeout 300 python3 scripts/bench_torch_prefill.py "$ckpt" 512,2048 \
    >"$OUT/hf_prefill_L$l.json" 2>"$OUT/hf_prefill_L$l.err" || tail -n 5 "$OUT/hf_prefill_L$l.err"
  quants=(none)
  [ $first -eq 1 ] && quants=(none int8)
  for q in "${quants[@]}"; do
    check=0
    [ $first -eq 1 ] && [ "$q" = none ] && check=16
    timeout 400 $node bench model --model "$ckpt" --device cuda:0 --quantization "$q" \
      --batch 1,8,32 --prompt 512,2048 --decode-prompt 128 --new-tokens 64 \
      --check-cpu $check --json >"$OUT/volt_L${l}_$q.json" 2>"$OUT/volt_L${l}_$q.err" \
      || tail -n 5 "$OUT/volt_L${l}_$q.err"
    grep -E "weights on|KV cache" "$OUT/volt_L${l}_$q.err" | head -3
  done
  if [ $first -eq 1 ]; then
    # Prefill attention on the SIMT kernel, against the tensor-core default
    # (speed, and the logits against the CPU without the tensor cores' bf16
    # rounding of q and P).
    timeout 200 $node bench model --model "$ckpt" --device cuda:0 --batch 1 \
      --prompt 512,2048 --new-tokens 8 --prefill-attention simt --check-cpu 16 --json \
      >"$OUT/volt_L${l}_simt.json" 2>"$OUT/volt_L${l}_simt.err" \
      || tail -n 5 "$OUT/volt_L${l}_simt.err"
  fi
  first=0
done
python3 scripts/model_side_by_side.py "$OUT" "${layers[@]}" | tee "$OUT/model_table.md"
