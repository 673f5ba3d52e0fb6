#!/usr/bin/env bash
# `npm test`: the whole suite against embedded PostgreSQL and Redis whose data lives under .data/test
# (wiped first). Unit, integration and browser (Chromium) tests run one file at a time; the secret scan
# runs last and checks every log in test-artifacts/logs/ for every secret the tests recorded. The output
# ends with node's test runner summary; the exit status is the runner's.
# Cluster mode (`npm test -- --redis-cluster`, or KEYFARM_TEST_REDIS=cluster): the same suite with every
# test farm and Keyfarm process on a local Redis Cluster (3 masters, 3 replicas; data under
# .data/test-cluster) instead of the single Redis; only tests that need a single server by design (a proxy
# in front of it, their own embedded services) keep one.
# KEYFARM_SKIP_ENSURE_DEPS=1 skips scripts/ensure-deps.sh (for a tree already installed and built).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

redis_mode=${KEYFARM_TEST_REDIS:-single}
for arg in "$@"; do
  case $arg in
    --redis-cluster) redis_mode=cluster ;;
    *)
      echo "usage: scripts/test.sh [--redis-cluster]" >&2
      exit 2
      ;;
  esac
done
case $redis_mode in
  single | cluster) ;;
  *)
    echo "test.sh: KEYFARM_TEST_REDIS must be single or cluster, not $redis_mode" >&2
    exit 2
    ;;
esac

if [ "${KEYFARM_SKIP_ENSURE_DEPS:-}" != 1 ]; then bash scripts/ensure-deps.sh; fi

TEST_DATA=.data/test
CLUSTER_DATA=.data/test-cluster
CLUSTER_CLI=dist/test/support/redis-cluster-cli.js
ARTIFACTS=test-artifacts
SERVICES_LOG=$ARTIFACTS/logs/suite--embedded-services.log
SECRET_SCAN=dist/test/zz-secret-scan.test.js
COVERAGE_CHECK=dist/test/zz-coverage.test.js

# Servers left by an interrupted run still hold the old data dir: stop them before wiping it.
node dist/bin/services.js wipe --data-dir "$TEST_DATA" >/dev/null 2>&1 || true
rm -rf "$TEST_DATA" "$ARTIFACTS"
mkdir -p "$ARTIFACTS/logs" "$ARTIFACTS/secrets"

stop_services() {
  node dist/bin/services.js stop --data-dir "$TEST_DATA" >>"$SERVICES_LOG" 2>&1 || true
  if [ "$redis_mode" = cluster ]; then node "$CLUSTER_CLI" stop --data-dir "$CLUSTER_DATA" >>"$SERVICES_LOG" 2>&1 || true; fi
}
trap stop_services EXIT
services_env=$(node dist/bin/services.js start --data-dir "$TEST_DATA" --no-fsync 2>>"$SERVICES_LOG") || {
  echo "test.sh: the embedded services did not start; see $SERVICES_LOG:" >&2
  tail -n 5 "$SERVICES_LOG" >&2
  exit 1
}
eval "$services_env"
export DATABASE_URL REDIS_URL
export KEYFARM_TEST_SUITE=1 KEYFARM_TEST_REDIS=$redis_mode
if [ "$redis_mode" = cluster ]; then
  cluster_env=$(node "$CLUSTER_CLI" start --data-dir "$CLUSTER_DATA" 2>>"$SERVICES_LOG") || {
    echo "test.sh: the local Redis Cluster did not start; see $SERVICES_LOG:" >&2
    tail -n 5 "$SERVICES_LOG" >&2
    exit 1
  }
  eval "$cluster_env"
  export KEYFARM_TEST_REDIS_CLUSTER_NODES KEYFARM_TEST_REDIS_PASSWORD
  echo "test.sh: Redis Cluster mode (seed nodes $KEYFARM_TEST_REDIS_CLUSTER_NODES)" >&2
fi

# Compiled tests whose TypeScript source still exists (dist/ may keep files of deleted tests).
files=()
while IFS= read -r f; do
  rel=${f#dist/}
  if [ -f "${rel%.js}.ts" ]; then files+=("$f"); fi
done < <(find dist/test/unit dist/test/integration dist/test/browser -name '*.test.js' 2>/dev/null | LC_ALL=C sort)
files+=("$COVERAGE_CHECK" "$SECRET_SCAN")

# node's runner sorts the files it is given; the scan must still be the last one it runs.
last=$(printf '%s\n' "${files[@]}" | LC_ALL=C sort | tail -n 1)
if [ "$last" != "$SECRET_SCAN" ]; then
  echo "test.sh: $last sorts after $SECRET_SCAN; the secret scan would not run last" >&2
  exit 1
fi

# Every node process of the run (test files, the Keyfarm processes they start, worker threads) writes its
# V8 coverage here; test/zz-coverage.test.ts merges it and checks the floor.
export NODE_V8_COVERAGE="$PWD/$ARTIFACTS/coverage/raw"

# --test-force-exit: a test file's process ends once its tests have, even if a client it opened (a Redis
# Cluster connection still retrying a killed node) keeps a handle open: a passed file never waits for the
# file timeout.
set +e
node --test --test-concurrency=1 --test-timeout=300000 --test-force-exit \
  --test-reporter=tap --test-reporter-destination=stdout \
  --test-reporter=spec --test-reporter-destination="$ARTIFACTS/test-report.txt" \
  "${files[@]}"
status=$?
set -e
exit "$status"
