// The bench's answer: a table on stdout, and the record in bench/results/ (history.ts says what is kept).
import { benchHistoryLines, recordFileName, recordRun } from './history.js';
import type { RawSchnorrRate } from './raw-schnorr.js';
import type { MachineInfo } from './machine-info.js';
import type { QuietWait } from './quiet.js';
import type { ScenarioResult } from './scenario.js';
import type { SecretCheck } from './secret-check.js';
import { NIP46_BAR, type Nip46Result } from './nip46/nip46-scenario.js';
import { median, round } from './stats.js';

/** The bar for this machine, all-in-one. */
export const BAR = { rps: 1000, p99Ms: 100 };

export interface BenchReport {
  startedAt: string;
  finishedAt: string;
  machine: MachineInfo;
  settings: Record<string, unknown>;
  setup: { users: number; seedSeconds: number };
  /** otherCoresDuringRaw: CPU of other people's processes during the measurement, in cores. */
  rawSchnorr: RawSchnorrRate & { durationMs: number; otherCoresDuringRaw: number; quietWait?: QuietWait };
  /** Requests/s of the farm's crypto alone: a sign and a verify each, on every core. */
  cryptoCeiling: RawSchnorrRate & { durationMs: number };
  /** A Fastify route that answers at once, under the same wrk. */
  noopRoute: { rps: number; p99Ms: number; connections: number; durationS: number };
  scenarios: (ScenarioResult & { ratioToRawSchnorr: number; ratioToCryptoCeiling: number; ratioToNoopRoute: number })[];
  nip46?: Nip46Result;
  bar: typeof BAR & { allInOneMet?: boolean };
  secretCheck: SecretCheck;
}

export function withRatios(
  scenarios: ScenarioResult[],
  raw: RawSchnorrRate,
  ceiling: RawSchnorrRate,
  noop: { rps: number },
): BenchReport['scenarios'] {
  return scenarios.map((s) => ({
    ...s,
    ratioToRawSchnorr: round(s.median.rps / raw.totalOpsPerSec, 3),
    ratioToCryptoCeiling: round(s.median.rps / ceiling.totalOpsPerSec, 3),
    ratioToNoopRoute: round(s.median.rps / noop.rps, 3),
  }));
}

export function printReport(r: BenchReport, out: (line: string) => void = console.log): void {
  out('');
  out(`Keyfarm sign_event bench: ${r.machine.cpuModel}, ${r.machine.cores} cores, node ${r.machine.node}`);
  out(
    `${r.settings.users} users, ${r.settings.connections} connections, ${r.settings.durationS} s per run, medians of ${r.settings.runs} runs`,
  );
  out(
    `raw Schnorr, ${r.rawSchnorr.threads} threads: ${r.rawSchnorr.totalOpsPerSec} signatures/s (other processes meanwhile: ${r.rawSchnorr.otherCoresDuringRaw} cores)`,
  );
  out(
    `crypto ceiling (${r.cryptoCeiling.backend}), ${r.cryptoCeiling.threads} threads: ${r.cryptoCeiling.totalOpsPerSec} requests/s`,
  );
  out(
    `no-op Fastify route, same wrk (${r.noopRoute.connections} connections): ${r.noopRoute.rps} req/s, p99 ${r.noopRoute.p99Ms} ms`,
  );
  const rows: Record<string, Record<string, string | number>> = {};
  for (const s of r.scenarios) {
    for (const run of s.runs) {
      rows[`${s.name} run ${run.run}`] = {
        'req/s': run.rps,
        'p50 ms': run.latencyMs.p50,
        'p95 ms': run.latencyMs.p95,
        'p99 ms': run.latencyMs.p99,
        'non-2xx': run.non2xx,
        errors: run.errors.connect + run.errors.read + run.errors.write + run.errors.timeout,
        'farm CPU ms/req': run.cpu.farmMsPerRequest,
        'others, cores': run.cpu.cores.other ?? '',
      };
    }
    rows[`${s.name} MEDIAN`] = {
      'req/s': s.median.rps,
      'p50 ms': s.median.p50Ms,
      'p95 ms': s.median.p95Ms,
      'p99 ms': s.median.p99Ms,
      'non-2xx': s.median.non2xx,
      errors: s.median.errors,
      'farm CPU ms/req': s.median.farmMsPerRequest,
      'others, cores': s.median.cpuCores.other ?? '',
      'of raw': `${round(s.ratioToRawSchnorr * 100)}%`,
      'of crypto ceiling': `${round(s.ratioToCryptoCeiling * 100)}%`,
      'of no-op route': `${round(s.ratioToNoopRoute * 100)}%`,
    };
  }
  console.table(rows);
  out('CPU cores busy during the load runs (median; machineBusy = whole machine, other = not ours):');
  console.table(Object.fromEntries(r.scenarios.map((s) => [s.name, s.median.cpuCores])));
  out('Of which the main thread (event loop) of each Keyfarm process, cores (median):');
  console.table(Object.fromEntries(r.scenarios.map((s) => [s.name, s.median.mainThreadCores])));
  out(
    "Cold keys (a user's first sign_event after a ping on a fresh farm, sequential; the ping's token lookup hints the key to its worker unless KEY_PREFETCH_MAX_INFLIGHT=0) vs warm:",
  );
  console.table(
    Object.fromEntries(
      r.scenarios.map((s) => [
        s.name,
        {
          users: s.coldKeys.users,
          'cold p50 ms': s.coldKeys.coldMs.p50,
          'cold p95 ms': s.coldKeys.coldMs.p95,
          'cold p99 ms': s.coldKeys.coldMs.p99,
          'warm p50 ms': s.coldKeys.warmMs.p50,
          'warm p95 ms': s.coldKeys.warmMs.p95,
        },
      ]),
    ),
  );
  for (const s of r.scenarios) {
    if (s.cacheFootprint) {
      const f = s.cacheFootprint;
      out(
        `Cache (${s.name}): ${f.keys} keys, ${f.bytes} bytes, ${f.bytesPerKey} bytes per cached key (${f.source})` +
          (f.coldLoadMeanMs !== undefined
            ? `; mean cold key load in the worker ${f.coldLoadMeanMs} ms over ${f.coldLoads}`
            : ''),
      );
    }
    out(`Farm's view (${s.name}): ${JSON.stringify({ ...s.farmView, source: undefined })}`);
    out(
      `Signatures verified (${s.name}): ${s.verify.valid}/${s.verify.checked}` +
        (Object.keys(s.verify.problems).length ? ` problems ${JSON.stringify(s.verify.problems)}` : ''),
    );
  }
  for (const s of r.scenarios) {
    for (const [i, o] of (s.openLoop ?? []).entries()) {
      out(
        `Open loop (${s.name}) ${i + 1}: offered ${o.offeredRps}/s over ${o.connections} connections, achieved ${o.achievedRps}/s, p50 ${o.latencyMs.p50} ms, p99 ${o.latencyMs.p99} ms, p99.9 ${o.latencyMs.p999} ms (from the scheduled send; from the actual send p50 ${o.serviceLatencyMs.p50} ms, p99 ${o.serviceLatencyMs.p99} ms), non-2xx ${o.non2xx}, errors ${o.errors}`,
      );
    }
    if (s.openLoop?.length)
      out(`Open loop (${s.name}) MEDIAN p99: ${round(median(s.openLoop.map((o) => o.latencyMs.p99)), 2)} ms`);
    if (s.getPublicKey)
      out(
        `get_public_key (${s.name}, ${s.getPublicKey.connections} connections) MEDIAN: ${s.getPublicKey.medianRps} req/s, p99 ${s.getPublicKey.medianP99Ms} ms`,
      );
  }
  if (r.nip46) printNip46(r.nip46, out);
  printRedisCost(r, out);
  out(
    `Secrets in farm logs: ${r.secretCheck.leaks.length} leaks (${r.secretCheck.secrets} secrets over ${r.secretCheck.logFiles} log files)`,
  );
  if (r.bar.allInOneMet !== undefined) {
    out(`Bar (all-in-one >= ${BAR.rps} req/s with p99 <= ${BAR.p99Ms} ms): ${r.bar.allInOneMet ? 'MET' : 'MISSED'}`);
  }
}

function printNip46(n: Nip46Result, out: (line: string) => void): void {
  out(`NIP-46 round trips (sign_event), all-in-one, ${n.clients} clients through a local relay (${n.relay}):`);
  const rows: Record<string, Record<string, string | number>> = {};
  for (const run of n.runs) {
    rows[`nip46 run ${run.run}`] = {
      'rt/s': run.rtPerSec,
      'p50 ms': run.latencyMs.p50,
      'p95 ms': run.latencyMs.p95,
      'p99 ms': run.latencyMs.p99,
      errors: run.errors.replied + run.errors.failed,
      'farm CPU ms/rt': run.cpu.farmMsPerRequest,
      'relay, cores': run.cpu.cores.relay ?? '',
      'others, cores': run.cpu.cores.other ?? '',
    };
  }
  rows['nip46 MEDIAN'] = {
    'rt/s': n.median.rtPerSec,
    'p50 ms': n.median.p50Ms,
    'p95 ms': n.median.p95Ms,
    'p99 ms': n.median.p99Ms,
    errors: n.median.errors,
    'farm CPU ms/rt': n.median.farmMsPerRoundTrip,
    'relay, cores': n.median.cpuCores.relay ?? '',
    'others, cores': n.median.cpuCores.other ?? '',
  };
  console.table(rows);
  out(
    `Signed events verified (nip46, nostr-tools): ${n.verify.valid}/${n.verify.checked}, by the right user ${n.verify.rightSigner}`,
  );
  out(
    `Bar (nip46 >= ${NIP46_BAR.rtPerSec} round trips/s with p99 <= ${NIP46_BAR.p99Ms} ms at ${NIP46_BAR.clients} clients): ${n.barMet ? 'MET' : 'MISSED'}`,
  );
}

/** Redis's cost per request of each scenario (INFO commandstats and INFO cpu around each run; medians). */
function printRedisCost(r: BenchReport, out: (line: string) => void): void {
  const rows: Record<string, Record<string, string | number>> = {};
  for (const s of r.scenarios) {
    rows[`${s.name} (HTTP sign_event)`] = {
      'commands/req': s.median.redisCommandsPerRequest,
      'CPU µs/req': s.median.redisCpuUsPerRequest,
      'less idle: commands/req': s.median.redisMarginal.commandsPerRequest,
      'less idle: CPU µs/req': s.median.redisMarginal.cpuUsPerRequest,
      'requests per job': s.median.redisItemsPerJob,
      'commands/job': s.median.redisMarginal.commandsPerJob,
      'CPU µs/job': s.median.redisMarginal.cpuUsPerJob,
      'req/s per Redis core': round(1e6 / s.median.redisMarginal.cpuUsPerRequest),
    };
    for (const [master, c] of Object.entries(s.median.redisPerServer ?? {}))
      rows[`${s.name}, master :${master}`] = { 'commands/req': c.commandsPerRequest, 'CPU µs/req': c.cpuUsPerRequest };
  }
  if (r.nip46)
    rows['nip46 (sign_event round trip)'] = {
      'commands/req': r.nip46.median.redisCommandsPerRoundTrip,
      'CPU µs/req': r.nip46.median.redisCpuUsPerRoundTrip,
      'less idle: commands/req': r.nip46.median.redisMarginalCommandsPerRoundTrip,
      'less idle: CPU µs/req': r.nip46.median.redisMarginalCpuUsPerRoundTrip,
      'requests per job': r.nip46.median.redisItemsPerJob,
      'req/s per Redis core': round(1e6 / r.nip46.median.redisMarginalCpuUsPerRoundTrip),
    };
  if (Object.keys(rows).length === 0) return;
  out(
    'Redis per request (medians; commands = total_commands_processed, those run inside Lua scripts included; CPU = used_cpu_sys + used_cpu_user of redis-server):',
  );
  console.table(rows);
  for (const s of r.scenarios)
    if (s.redisMonitor)
      out(
        `Commands sent per request (${s.name}, one slow-logged run): ${s.redisMonitor.sentPerRequest}; ${s.redisMonitor.perRequest
          .filter((c) => !c.command.startsWith('lua '))
          .map((c) => `${c.command} ${c.calls}`)
          .join(', ')}`,
      );
}

/** Writes runs/<timestamp>.json (not committed), latest.json and the run's history.jsonl lines; returns the first. */
export function writeReport(r: BenchReport, dir: string): string {
  return recordRun(dir, r, recordFileName(r.startedAt), 'latest.json', benchHistoryLines(r));
}
