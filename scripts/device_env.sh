# Sourced (after `set -uo pipefail`) by the scripts that run on the GPU machine with
# .device/ carried (scripts/device_bundle.sh made it): the repository root as working
# directory, $OUT (the device tool's output folder; /tmp/volt-out where it is unset)
# created, the bundle's libraries on the loader path, and $node, the bundled volt-node.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/volt-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/.device/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
node=.device/bin/volt-node
