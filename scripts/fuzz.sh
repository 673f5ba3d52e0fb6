#!/usr/bin/env bash
# npm run fuzz: build, then send FUZZ_RUNS (default 100,000) generated requests over every api route against
# an in-process farm on embedded servers of its own (.data/fuzz). FUZZ_SEED replays a run, FUZZ_CONCURRENCY
# sets the routes fuzzed at once. Result: a table on stdout and bench/results/fuzz-latest.json.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
node scripts/copy-assets.mjs
exec node dist/bench/fuzz.js "$@"
