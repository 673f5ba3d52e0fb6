// bench/results/ keeps the latest record and a line per scenario of each run; the full record of every run
// goes to an ignored folder. The committed history must agree with the committed latest record.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  benchHistoryLines,
  fuzzHistoryLine,
  recordFileName,
  recordRun,
  type HistoryLine,
} from '../../bench/history.js';
import { PROJECT_ROOT } from '../support/paths.js';

const RESULTS = path.join(PROJECT_ROOT, 'bench', 'results');

const readHistory = (dir: string): HistoryLine[] =>
  readFileSync(path.join(dir, 'history.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as HistoryLine);

describe('bench results', () => {
  it('writes the full record under runs/, the latest record, and appends one history line per scenario', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kf-bench-history-'));
    try {
      const record = {
        startedAt: '2026-12-05T01:02:03.456Z',
        settings: { users: 10, durationS: 5 },
        rawSchnorr: { totalOpsPerSec: 1000 },
        scenarios: [
          {
            name: 'all-in-one',
            ratioToRawSchnorr: 0.5,
            median: { rps: 500, p50Ms: 10, p99Ms: 40, errors: 0, cpuCores: { other: 0.01 } },
          },
        ],
        nip46: { clients: 4, median: { rtPerSec: 100, p50Ms: 20, p99Ms: 60, errors: 0, cpuCores: {} } },
      };
      for (let run = 0; run < 2; run++) {
        const file = recordRun(dir, record, recordFileName(record.startedAt), 'latest.json', benchHistoryLines(record));
        assert.equal(path.relative(dir, file), path.join('runs', '2026-12-05T01-02-03-456Z.json'));
      }
      assert.deepEqual(JSON.parse(readFileSync(path.join(dir, 'latest.json'), 'utf8')), record);
      assert.deepEqual(readdirSync(path.join(dir, 'runs')), ['2026-12-05T01-02-03-456Z.json']);
      const lines = readHistory(dir);
      assert.equal(lines.length, 4, 'two runs of two scenarios, appended');
      assert.deepEqual(lines[0], {
        date: record.startedAt,
        scenario: 'all-in-one',
        rps: 500,
        p50Ms: 10,
        p99Ms: 40,
        ratio: 0.5,
        rawSchnorr: 1000,
        users: 10,
        durationS: 5,
        otherCores: 0.01,
        errors: 0,
      });
      assert.deepEqual(lines[1], {
        date: record.startedAt,
        scenario: 'nip46',
        rps: 100,
        p50Ms: 20,
        p99Ms: 60,
        ratio: 0.1,
        rawSchnorr: 1000,
        users: 4,
        durationS: 5,
        errors: 0,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps only the latest records and the history in the repository, and they agree', () => {
    const files = readdirSync(RESULTS);
    for (const name of ['latest.json', 'fuzz-latest.json', 'history.jsonl']) assert.ok(files.includes(name), name);
    assert.deepEqual(
      files.filter((f) => /^(fuzz-)?\d{4}-.*\.json$/.test(f)),
      [],
      'no per-run records beside the latest',
    );
    const history = readHistory(RESULTS);
    const latest = JSON.parse(readFileSync(path.join(RESULTS, 'latest.json'), 'utf8'));
    const expected = benchHistoryLines(latest);
    assert.ok(expected.length > 0);
    for (const line of expected)
      assert.ok(
        history.some((h) => JSON.stringify(h) === JSON.stringify(line)),
        `history has ${line.scenario} of ${line.date}`,
      );
    const fuzz = JSON.parse(readFileSync(path.join(RESULTS, 'fuzz-latest.json'), 'utf8'));
    assert.ok(
      history.some((h) => JSON.stringify(h) === JSON.stringify(fuzzHistoryLine(fuzz))),
      'history has the latest fuzz run',
    );
    const dates = history.map((h) => h.date);
    assert.deepEqual(dates, [...dates].sort(), 'oldest first');
  });
});
