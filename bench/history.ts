// What bench/results/ keeps in the repository: the latest full record (latest.json, fuzz-latest.json) and
// history.jsonl, one short line per scenario of every run. Every run's full JSON goes to
// bench/results/runs/, which git ignores: a record is about 1,000 lines, too many to keep per run.
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** One scenario of one run. `rps` is round trips per second for nip46, requests per second otherwise. */
export interface HistoryLine {
  date: string;
  scenario: string;
  rps?: number;
  p50Ms?: number;
  p99Ms?: number;
  /** The scenario's throughput as a share of the raw Schnorr signing rate of the same machine. */
  ratio?: number;
  rawSchnorr?: number;
  /** Users (HTTP) or clients (nip46) under load. */
  users?: number;
  /** Seconds of each timed run (the medians are over several). */
  durationS?: number;
  /** Cores other people's processes used meanwhile (median); compare runs whose value is near 0. */
  otherCores?: number;
  errors?: number;
  /** Redis commands (those Lua ran included) and Redis CPU µs per request (median over the runs). */
  redisCommands?: number;
  redisCpuUs?: number;
  /** fuzz: inputs sent, answers of 500 and above, bad answers and crashes. */
  inputs?: number;
  fiveXx?: number;
  problems?: number;
  seed?: number;
}

/** The parts of a bench record the history reads (older records lack some of them). */
export interface BenchRecordSummary {
  startedAt: string;
  settings?: { users?: number; durationS?: number };
  rawSchnorr?: { totalOpsPerSec?: number };
  scenarios?: {
    name: string;
    ratioToRawSchnorr?: number;
    median?: {
      rps?: number;
      p50Ms?: number;
      p99Ms?: number;
      errors?: number;
      cpuCores?: { other?: number };
      redisCommandsPerRequest?: number;
      redisCpuUsPerRequest?: number;
    };
  }[];
  nip46?: {
    clients?: number;
    median?: {
      rtPerSec?: number;
      p50Ms?: number;
      p99Ms?: number;
      errors?: number;
      cpuCores?: { other?: number };
      redisCommandsPerRoundTrip?: number;
      redisCpuUsPerRoundTrip?: number;
    };
  };
}

export interface FuzzRecordSummary {
  at: string;
  inputs?: number;
  fiveXx?: number;
  problems?: unknown[];
  crashes?: unknown[];
  seed?: number;
}

/** Drops the fields a record did not have, so a line holds only what was measured. */
function compact(line: HistoryLine): HistoryLine {
  return Object.fromEntries(Object.entries(line).filter(([, v]) => v !== undefined)) as unknown as HistoryLine;
}

export function benchHistoryLines(r: BenchRecordSummary): HistoryLine[] {
  const raw = r.rawSchnorr?.totalOpsPerSec;
  const lines = (r.scenarios ?? []).map((s) => ({
    date: r.startedAt,
    scenario: s.name,
    rps: s.median?.rps,
    p50Ms: s.median?.p50Ms,
    p99Ms: s.median?.p99Ms,
    ratio: s.ratioToRawSchnorr,
    rawSchnorr: raw,
    users: r.settings?.users,
    durationS: r.settings?.durationS,
    otherCores: s.median?.cpuCores?.other,
    errors: s.median?.errors,
    redisCommands: s.median?.redisCommandsPerRequest,
    redisCpuUs: s.median?.redisCpuUsPerRequest,
  }));
  const n = r.nip46;
  if (n?.median) {
    lines.push({
      date: r.startedAt,
      scenario: 'nip46',
      rps: n.median.rtPerSec,
      p50Ms: n.median.p50Ms,
      p99Ms: n.median.p99Ms,
      ratio: raw && n.median.rtPerSec !== undefined ? Math.round((n.median.rtPerSec / raw) * 1000) / 1000 : undefined,
      rawSchnorr: raw,
      users: n.clients,
      durationS: r.settings?.durationS,
      otherCores: n.median.cpuCores?.other,
      errors: n.median.errors,
      redisCommands: n.median.redisCommandsPerRoundTrip,
      redisCpuUs: n.median.redisCpuUsPerRoundTrip,
    });
  }
  return lines.map(compact);
}

export function fuzzHistoryLine(r: FuzzRecordSummary): HistoryLine {
  return compact({
    date: r.at,
    scenario: 'fuzz',
    inputs: r.inputs,
    fiveXx: r.fiveXx,
    problems: r.problems === undefined ? undefined : r.problems.length + (r.crashes?.length ?? 0),
    seed: r.seed,
  });
}

/** The file name of a record taken at `date` (an ISO time): colons and dots are not portable in names. */
export function recordFileName(date: string, prefix = ''): string {
  return `${prefix}${date.replace(/[:.]/g, '-')}.json`;
}

/**
 * Writes one run: its full JSON under runs/ (ignored by git), `latestName` (the whole record, committed)
 * and its lines appended to history.jsonl. Returns the path of the full JSON.
 */
export function recordRun(
  dir: string,
  record: object,
  fileName: string,
  latestName: string,
  lines: HistoryLine[],
): string {
  const json = `${JSON.stringify(record, null, 2)}\n`;
  const runs = path.join(dir, 'runs');
  mkdirSync(runs, { recursive: true });
  const file = path.join(runs, fileName);
  writeFileSync(file, json);
  writeFileSync(path.join(dir, latestName), json);
  appendFileSync(path.join(dir, 'history.jsonl'), lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
  return file;
}
