// Mutation testing of the security-critical modules (scripts/mutation/modules.mjs); run it with
// `npm run mutation` (scripts/mutation.sh), which picks the modules and the kind of run through
// MUTATION_MODULES and MUTATION_KIND. StrykerJS 9 is pinned: 10 needs Node 22, the project runs on 20.
import { MODULES } from './scripts/mutation/modules.mjs';

const names = (process.env.MUTATION_MODULES ?? '').split(',').filter(Boolean);
const kind = process.env.MUTATION_KIND ?? 'unit';
const modules = MODULES.filter((m) => names.includes(m.name));
if (modules.length === 0) throw new Error('MUTATION_MODULES names no module: run `npm run mutation`');

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'command',
  commandRunner: { command: 'node scripts/mutation/run-tests.mjs' },
  // Built once per run in the sandbox: the mutant schemata carry every mutant in one build.
  buildCommand: 'npm run --silent build',
  mutate: modules.flatMap((m) => (m.ranges ? m.ranges.map((r) => `${m.source}:${r}`) : [m.source])),
  // The command runner reports no per-test coverage: every mutant runs its module's tests.
  coverageAnalysis: 'off',
  // Integration tests share one PostgreSQL and Redis: one at a time. Unit tests may run two at once.
  concurrency: kind === 'unit' ? 2 : 1,
  timeoutMS: 20_000,
  timeoutFactor: 1.5,
  // One sandbox directory per kind, so a unit run and an integration run can go at the same time.
  ignorePatterns: ['dist', '.data', 'test-artifacts', 'reports', 'bench/results', 'deploy', '.stryker-tmp*'],
  tempDirName: `.stryker-tmp-${kind}`,
  cleanTempDir: 'always',
  reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
  htmlReporter: { fileName: `reports/mutation/${kind}/index.html` },
  jsonReporter: { fileName: `reports/mutation/${kind}/mutation.json` },
  clearTextReporter: { allowColor: false, logTests: false, reportMutants: false, reportScoreTable: true },
  thresholds: { high: 85, low: 70, break: null },
};
