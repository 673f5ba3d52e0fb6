// Runs second to last in the suite, after every other test file has exited and so has written its V8
// coverage (scripts/test.sh sets NODE_V8_COVERAGE for the runner and every process it starts, Keyfarm
// processes and worker threads included). It merges them with c8, maps them onto the TypeScript through
// the source maps, writes test-artifacts/coverage/ and holds the suite to the floor in .c8rc.json.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { PROJECT_ROOT } from './support/paths.js';

interface Totals {
  lines: { pct: number };
  statements: { pct: number };
  functions: { pct: number };
  branches: { pct: number };
}

const c8Config = JSON.parse(readFileSync(path.join(PROJECT_ROOT, '.c8rc.json'), 'utf8')) as {
  lines: number;
  'reports-dir': string;
};

test('the suite covers at least the floor of lines in .c8rc.json', (t) => {
  if (!process.env.NODE_V8_COVERAGE) {
    t.diagnostic('run without NODE_V8_COVERAGE (only scripts/test.sh collects coverage): nothing to measure');
    return;
  }
  const c8 = path.join(PROJECT_ROOT, 'node_modules', 'c8', 'bin', 'c8.js');
  let failure = '';
  try {
    // NODE_V8_COVERAGE is dropped so that c8's own process does not add to the data it reads.
    const env = { ...process.env };
    delete env.NODE_V8_COVERAGE;
    execFileSync(process.execPath, [c8, 'report'], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    failure = String((err as { stderr?: Buffer }).stderr ?? err);
  }
  const summary = JSON.parse(
    readFileSync(path.join(PROJECT_ROOT, c8Config['reports-dir'], 'coverage-summary.json'), 'utf8'),
  ) as { total: Totals };
  const { lines, statements, functions, branches } = summary.total;
  t.diagnostic(
    `coverage: lines ${lines.pct}%, statements ${statements.pct}%, functions ${functions.pct}%, branches ${branches.pct}% ` +
      `(floor: lines ${c8Config.lines}%; report in ${c8Config['reports-dir']}/index.html)`,
  );
  assert.ok(lines.pct >= c8Config.lines, `line coverage ${lines.pct}% is under the floor of ${c8Config.lines}%`);
  assert.equal(failure, '', `c8 report failed: ${failure}`);
});
