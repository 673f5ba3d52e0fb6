#!/usr/bin/env bash
# `npm run mutation [-- MODULE...]`: mutation testing (StrykerJS, command runner) of the security-critical
# modules listed in scripts/mutation/modules.mjs, or of the ones named. Each mutant runs only the tests of
# its module, against embedded PostgreSQL and Redis whose data lives under .data/mutation (wiped first).
# Unit-tested modules run in one Stryker run (two mutants at a time), integration-tested ones in a second
# (one at a time: they share the servers). Reports: reports/mutation/{unit,integration}/ (HTML and JSON),
# each replaced only by a run of its kind; the per-module score table of both is printed at the end. MUTATION_SKIP_DEPS=1 skips scripts/ensure-deps.sh
# (when node_modules and dist/ are known to be current).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "${MUTATION_SKIP_DEPS:-}" != 1 ]; then bash scripts/ensure-deps.sh; fi

DATA=.data/mutation
LOG=reports/mutation/embedded-services.log
node dist/bin/services.js wipe --data-dir "$DATA" >/dev/null 2>&1 || true
rm -rf "$DATA"
mkdir -p reports/mutation

stop_services() { node dist/bin/services.js stop --data-dir "$DATA" >>"$LOG" 2>&1 || true; }
trap stop_services EXIT
services_env=$(node dist/bin/services.js start --data-dir "$DATA" --no-fsync 2>>"$LOG") || {
  echo "mutation.sh: the embedded services did not start; see $LOG" >&2
  exit 1
}
eval "$services_env"
export DATABASE_URL REDIS_URL
export KEYFARM_TEST_SUITE=1

status=0
for kind in unit integration; do
  modules=$(node --input-type=module -e "
    import { selectModules } from './scripts/mutation/modules.mjs';
    const picked = selectModules(process.argv.slice(1)).filter((m) => m.kind === '$kind');
    console.log(picked.map((m) => m.name).join(','));
  " -- "$@")
  [ -n "$modules" ] || continue
  echo "mutation.sh: $kind modules: $modules"
  rm -rf "reports/mutation/$kind"
  start=$(date +%s)
  MUTATION_KIND=$kind MUTATION_MODULES=$modules npx stryker run stryker.config.mjs || status=$?
  echo "mutation.sh: $kind run took $(( $(date +%s) - start ))s"
done

node scripts/mutation/summary.mjs reports/mutation/unit/mutation.json reports/mutation/integration/mutation.json
exit "$status"
