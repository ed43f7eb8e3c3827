#!/usr/bin/env bash
# Sets up, builds and runs the main job: greedy generation with the tiny Mixtral checkpoint
# trained on Python source shipped in tests/data (tiny-mixtral-text-a, with its sentencepiece
# tokenizer), printing the text completion and tokens/s. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
"${VOLT_BUILD_DIR:-build}/apps/volt-node" generate --model tests/data/tiny-mixtral-text-a \
  --prompt "${VOLT_DEMO_PROMPT:-def fibonacci(n):}" --max-new-tokens "${VOLT_DEMO_TOKENS:-48}"
