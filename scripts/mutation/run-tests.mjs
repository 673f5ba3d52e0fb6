// Stryker's command test runner calls this once per mutant, in its sandbox, with the mutant's id in
// __STRYKER_ACTIVE_MUTANT__ (mutant schemata: one build holds every mutant, switched on by that variable).
// It runs only the tests of the module the mutant is in, found by the mutant's id in the instrumented
// sources; with no active mutant (Stryker's dry run) it runs the tests of every module of this run.
// Exit status 0: the tests passed (the mutant survived); otherwise they failed (killed).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { MODULES } from './modules.mjs';

const names = (process.env.MUTATION_MODULES ?? '').split(',').filter(Boolean);
const modules = MODULES.filter((m) => names.includes(m.name));
const mutant = process.env.__STRYKER_ACTIVE_MUTANT__;

/** The module whose instrumented source holds the mutant (Stryker marks each one as stryMutAct_9fa48("id")). */
function moduleOf(id) {
  const marker = `stryMutAct_9fa48("${id}")`;
  return modules.find((m) => readFileSync(m.source, 'utf8').includes(marker));
}

function runFile({ file, pattern }) {
  const args = ['--test', '--test-concurrency=1', '--test-timeout=120000', '--test-reporter=tap'];
  if (pattern) args.push(`--test-name-pattern=${pattern}`);
  const run = spawnSync(process.execPath, [...args, file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const passed = Number(/^# pass (\d+)/m.exec(run.stdout)?.[1] ?? 0);
  return { ok: run.status === 0 && passed > 0, passed, output: `${run.stdout}\n${run.stderr}` };
}

let targets;
if (mutant === undefined) {
  targets = modules;
} else {
  const owner = moduleOf(mutant);
  if (!owner) {
    // Reported as surviving, never as killed: a runner fault must not raise the score.
    console.error(`mutant ${mutant} is in none of: ${names.join(', ')}`);
    process.exit(0);
  }
  targets = [owner];
}

const seen = new Set();
for (const m of targets) {
  for (const t of m.tests) {
    const key = `${t.file}\0${t.pattern ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const result = runFile(t);
    if (!result.ok) {
      // A dry-run failure is a broken setup, not a killed mutant: show why.
      if (mutant === undefined)
        console.error(
          `${m.name}: ${t.file}${t.pattern ? ` /${t.pattern}/` : ''} failed or ran no test (${result.passed} passed)\n${result.output.slice(-4000)}`,
        );
      process.exit(1);
    }
  }
}
