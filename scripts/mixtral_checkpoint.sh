#!/usr/bin/env bash
# Runs on the GPU machine (device tool) with .device/ carried: writes a
# Mixtral-8x7B-shaped checkpoint of LAYERS layers (random bf16 weights, hub
# layout) into DIR with the team's tool, unless DIR already holds one. The tool
# also times transformers, briefly here (16 prompt tokens, 4 new); its output
# goes to LOGS/hf_L<LAYERS>.json and .err. Exits 1 (with the tool's last lines)
# when it fails.
#   scripts/mixtral_checkpoint.sh DIR LAYERS LOGS
set -uo pipefail
cd "$(dirname "$0")/.."
dir=$1
layers=$2
logs=$3
[ -f "$dir/config.json" ] && exit 0
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
PYTHONUNBUFFERED=1 timeout 300 python3 .device/tools/mixtral_shape_checkpoint.py \
  "$dir" "$layers" 16 4 >"$logs/hf_L$layers.json" 2>"$logs/hf_L$layers.err" \
  || { tail -n 5 "$logs/hf_L$layers.err"; exit 1; }
