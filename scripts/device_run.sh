#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repository root, with .device/
# carried (scripts/device_bundle.sh made it). One call does what the lease allows:
#   scripts/device_run.sh [tests] [bench] [torch] [ncu] [serve] [serve-gpu]
#                         [cluster] [model]
#   (default: tests bench torch)
# Writes under $OUT: gpu.txt, tests.log, bench_bf16.json, bench_int8.json,
# torch.json, table.md (the side-by-side table), ncu.txt, serve_*.json (CPU
# experts) and serve_gpu_*.json (CUDA experts).
set -uo pipefail
source "$(dirname "$0")/device_env.sh"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests bench torch)
has() { local s; for s in "${steps[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
tokens=${VOLT_BENCH_TOKENS:-1,8,32,128,256,512,2048}
iters=${VOLT_BENCH_ITERS:-50}

{ date -u; cat .device/commit; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv; } >"$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"

if has tests; then
  # volt_tests has the fixture path of the build machine compiled in.
  data_dir=$(grep -a -o -m1 -E '/[[:alnum:]_./-]*/tests/data' .device/bin/volt_tests | head -n1 || true)
  if [ -n "$data_dir" ] && [ ! -e "$data_dir" ]; then
    mkdir -p "$(dirname "$data_dir")" && ln -s "$PWD/tests/data" "$data_dir"
  fi
  # VOLT_GPU_SUITES="a b" runs only those.
  for suite in ${VOLT_GPU_SUITES:-gpu.cuda_ops gpu.cuda_model_ops gpu.cuda_dense_decode gpu.cuda_prefill_attention gpu.cuda_expert model.cuda_executor gpu.cpu_quant gpu.cpu_ops}; do
    echo "== $suite"
    timeout 300 tests/run_suite.sh .device/bin/volt_tests -n -r 300 -s "^${suite//./\\.}\$" 2>&1 | tail -n 400
    echo "exit: ${PIPESTATUS[0]}"
  done >"$OUT/tests.log" 2>&1
  grep -E "^== |exit:|VOLT_GPU_SKIPPED|rel_error|FAIL|failed|error|worst|identical|agrees|preemptions|^!!" "$OUT/tests.log" | head -n 120
fi

if has bench; then
  $node bench moe-layer --device cuda:0 --dtype bf16 --tokens "$tokens" --path all \
    --iters "$iters" --sweep-decode --json >"$OUT/bench_bf16.json" 2>"$OUT/bench_err.txt" || cat "$OUT/bench_err.txt"
  $node bench moe-layer --device cuda:0 --dtype int8 --tokens "$tokens" --path all \
    --iters "$iters" --sweep-decode --json >"$OUT/bench_int8.json" 2>>"$OUT/bench_err.txt" || cat "$OUT/bench_err.txt"
fi

if has torch; then
  python3 scripts/bench_torch_moe.py --tokens "$tokens" --iters "$iters" \
    >"$OUT/torch.json" 2>"$OUT/torch_err.txt" || tail -n 20 "$OUT/torch_err.txt"
fi

if [ -s "$OUT/bench_bf16.json" ]; then
  python3 scripts/moe_side_by_side.py "$OUT/bench_bf16.json" "$OUT/bench_int8.json" \
    "$OUT/torch.json" "$OUT/gpu.txt" >"$OUT/table.md"
  cat "$OUT/table.md"
fi

if has serve; then
  # Continuous batching on the CPU of the GPU machine (the tiny model), three
  # rounds: no shared prefix, 40-token prompts with and without 32 shared.
  { nproc; lscpu | grep -E "Model name|Thread|Core|Socket"; } >"$OUT/serve_cpu.txt"
  for round in 1 2 3; do
    $node bench serve --model tests/data/tiny-mixtral-a --json >"$OUT/serve_$round.json"
  done
  $node bench serve --model tests/data/tiny-mixtral-a --prompt-tokens 40 --json \
    >"$OUT/serve_40.json"
  $node bench serve --model tests/data/tiny-mixtral-a --prompt-tokens 40 \
    --shared-prefix 32 --json >"$OUT/serve_40_shared.json"
  cat "$OUT/serve_cpu.txt" "$OUT"/serve_*.json
fi

if has serve-gpu; then
  # The same benchmark with the whole step on the GPU (bf16 three times, then
  # int8 experts).
  for round in 1 2 3; do
    $node bench serve --model tests/data/tiny-mixtral-a --device cuda:0 --json \
      >"$OUT/serve_gpu_$round.json"
  done
  $node bench serve --model tests/data/tiny-mixtral-a --device cuda:0 \
    --quantization int8 --json >"$OUT/serve_gpu_int8.json"
  cat "$OUT"/serve_gpu_*.json
fi

if has cluster; then
  # A GPU router and two GPU workers over TCP against a GPU standalone node.
  scripts/device_cluster_check.sh >"$OUT/cluster.txt" 2>&1
  cat "$OUT/cluster.txt"
fi

if has model; then
  # A Mixtral-8x7B-shaped checkpoint: Volt against transformers, floors.
  scripts/bench_model_gpu.sh ${VOLT_MODEL_LAYERS:-4 8}
fi

if has ncu; then
  # Hardware counters of the decode kernels at 1 and 32 tokens (bf16 and int8).
  for dt in bf16 int8; do
    timeout 240 ncu --clock-control none -k regex:expert_mma --launch-skip 4 --launch-count 4 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
      --section LaunchStats \
      $node bench moe-layer --device cuda:0 --dtype $dt --tokens 1,32 --path decode \
      --iters 2 --warmup 1 --gating-tokens 64
  done >"$OUT/ncu.txt" 2>&1
  grep -E "expert_mma|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Registers Per" "$OUT/ncu.txt" | head -n 60
fi
