#!/usr/bin/env bash
# Sets up, builds and runs the main job: greedy generation with the tiny Mixtral checkpoint
# shipped in tests/data, printing the new tokens and tokens/s. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
"${VOLT_BUILD_DIR:-build}/apps/volt-node" generate --model tests/data/tiny-mixtral-a \
  --prompt-ids "${VOLT_DEMO_PROMPT:-1,22,33,44,5}" --max-new-tokens "${VOLT_DEMO_TOKENS:-24}"
