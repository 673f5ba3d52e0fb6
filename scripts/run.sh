#!/usr/bin/env bash
# `npm start`: the whole farm in one process. With DATABASE_URL and REDIS_URL unset (here or in .env) the
# CLI starts its embedded PostgreSQL and Redis with their data under DATA_DIR (default .data/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure-deps.sh
# The young generation pinned at 16 MB semi-spaces (bin/node-options.ts, as in deploy/Dockerfile).
export NODE_OPTIONS="--max-semi-space-size=16${NODE_OPTIONS:+ $NODE_OPTIONS}"
exec node dist/bin/keyfarm.js all "$@"
