#!/usr/bin/env bash
# Installs the official OpenAI client for Node.js (npm package `openai`, at a
# pinned version) into DIR/node_modules for the http.openai_client test.
# Idempotent: an existing install of that version is kept. Needs node, npm and
# the npm registry (or a cache that has the package).
set -euo pipefail
dir=${1:?usage: install_openai.sh DIR}
version=5.23.2
if [ -f "$dir/node_modules/openai/package.json" ] \
   && grep -q "\"version\": \"$version\"" "$dir/node_modules/openai/package.json"; then
  exit 0
fi
mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"name": "volt-http-tests", "private": true}' >"$dir/package.json"
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "openai@$version"
