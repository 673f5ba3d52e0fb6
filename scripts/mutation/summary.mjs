// Prints the mutation score of each module from Stryker's JSON reports (mutation-testing-report-schema):
// score = (killed + timed out) / (killed + timed out + survived + no coverage), as Stryker counts it;
// compile errors and ignored mutants are not counted. Lists the surviving mutants with their lines.
import { existsSync, readFileSync } from 'node:fs';
import { MODULES } from './modules.mjs';

const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);

const rows = [];
const survivors = [];
for (const report of process.argv.slice(2).filter((p) => existsSync(p))) {
  const { files } = JSON.parse(readFileSync(report, 'utf8'));
  for (const [path, { mutants }] of Object.entries(files)) {
    const module = MODULES.find((m) => path.endsWith(m.source));
    // A report of a whole file (an earlier run) still counts only the module's ranges.
    const inRanges = (m) =>
      !module?.ranges ||
      module.ranges.some((r) => {
        const [from, to] = r.split('-').map(Number);
        return m.location.start.line >= from && m.location.start.line <= to;
      });
    const counted = mutants.filter(inRanges);
    const count = (status) => counted.filter((m) => m.status === status).length;
    const detected = counted.filter((m) => DETECTED.has(m.status)).length;
    const undetected = counted.filter((m) => UNDETECTED.has(m.status));
    const total = detected + undetected.length;
    rows.push({
      module: module?.name ?? path,
      path,
      total,
      killed: count('Killed'),
      timeout: count('Timeout'),
      survived: count('Survived'),
      noCoverage: count('NoCoverage'),
      score: total === 0 ? 100 : (100 * detected) / total,
    });
    for (const m of undetected) {
      survivors.push(
        `${path}:${m.location.start.line}:${m.location.start.column} ${m.mutatorName} -> ${JSON.stringify(m.replacement ?? '')} (${m.status})`,
      );
    }
  }
}
if (rows.length === 0) {
  console.error('summary: no mutation report found');
  process.exit(1);
}
const pad = (s, n) => String(s).padEnd(n);
console.log(
  `\n${pad('module', 28)}${pad('mutants', 9)}${pad('killed', 8)}${pad('timeout', 9)}${pad('survived', 10)}${pad('no cov.', 9)}score`,
);
for (const r of rows)
  console.log(
    `${pad(r.module, 28)}${pad(r.total, 9)}${pad(r.killed, 8)}${pad(r.timeout, 9)}${pad(r.survived, 10)}${pad(r.noCoverage, 9)}${r.score.toFixed(1)}%`,
  );
if (survivors.length > 0) console.log(`\nsurviving mutants:\n${survivors.join('\n')}`);
