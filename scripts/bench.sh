#!/usr/bin/env bash
# npm run bench [-- options]: make sure the dependencies and the build are there, then measure sign_event
# throughput and latency on this machine. Options (--runs N, --duration S, --scenario all-in-one|split, ...):
# see bench/options.ts.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f scripts/ensure-deps.sh ]; then
  # installs what is missing (wrk among the apt packages) and builds dist/
  bash scripts/ensure-deps.sh
else
  if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "bench: wrk not found: install the Debian package wrk (apt-get install wrk)" >&2
      exit 1
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  fi
  # tsc emits even when a file has a type error; the bench runs on what was emitted.
  npx tsc -p tsconfig.json || echo "bench: tsc reported type errors; running on the emitted build" >&2
  node scripts/copy-assets.mjs
fi
exec node dist/bench/run.js "$@"
