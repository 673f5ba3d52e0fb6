// `node dist/bench/ab.js`: interleaved A/B runs of the farm under HTTP sign_event load, for changes whose
// effect is smaller than the noise of a shared machine. One set of servers and users; then, round after
// round, each variant (a build and settings, all-in-one or split) is started fresh, warmed over every
// user, loaded with wrk, and stopped, in alternating order. Reported per run: farm CPU per request (the
// figure that survives other people's load), Redis's commands and CPU per request and per job (INFO of the
// one Redis every variant shares, bench/redis-cost.ts), req/s, p99, main-thread cores, and the machine's
// load average.
//
//   node dist/bench/ab.js --variant 'before|/tmp/before/dist|' --variant 'after||CRYPTO_LANE_THREADS=0' \
//     [--rounds 3] [--users 300] [--duration 10] [--connections 64] [--method sign_event|get_public_key]
//     [--open-loop RATE [--open-loop-connections 100]]
// --open-loop: the timed run offers sign_event at RATE/s through bench/open-loop.ts instead of wrk at c
// connections, and reports latency from the scheduled send (p50/p99/p99.9), from the actual send (p99), and
// the farm's event-loop delay over the run (its own metrics).
// A variant is NAME|DIST|K=V;K=V|SHAPE: DIST empty for this checkout's dist, SHAPE all (default) or split.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { startBenchServices, type BenchServices } from './bench-services.js';
import { PROJECT_ROOT, startFarmProcess, type FarmProcess, type Role } from './farm-process.js';
import { Redis } from 'ioredis';
import { fetchMetrics, sampleValue, type Sample } from './farm-metrics.js';
import { runOpenLoop } from './open-loop.js';
import { costBetween, readCounters } from './redis-cost.js';
import { cpuBetween, ourPids, snapshot } from './scenario.js';
import { seedUsers, writeTokenFile } from './seed-users.js';
import { median, round } from './stats.js';
import { runWrk, writeSignEventScript, type WrkMethod } from './wrk-load.js';

interface Variant {
  name: string;
  cli?: string;
  env: Record<string, string>;
  shape: 'all' | 'split';
}

const DATA_DIR = path.join(PROJECT_ROOT, '.data', 'bench-ab');
const LOG_DIR = path.join(DATA_DIR, 'logs');
const log = (m: string) => console.log(`[ab] ${m}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function parseVariant(spec: string): Variant {
  const [name = '', dist = '', envSpec = '', shape = 'all'] = spec.split('|');
  if (!name || (shape !== 'all' && shape !== 'split')) throw new Error(`bad --variant ${spec}`);
  const env: Record<string, string> = {};
  for (const kv of envSpec.split(';').filter(Boolean)) {
    const at = kv.indexOf('=');
    env[kv.slice(0, at)] = kv.slice(at + 1);
  }
  return { name, env, shape, ...(dist ? { cli: path.join(path.resolve(dist), 'bin', 'keyfarm.js') } : {}) };
}

function parseArgs(argv: string[]) {
  const o = {
    rounds: 3,
    users: 300,
    duration: 10,
    connections: 64,
    method: 'sign_event' as WrkMethod,
    openLoop: 0,
    openLoopConnections: 100,
  };
  const variants: Variant[] = [];
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value = ''] = [argv[i], argv[i + 1]];
    if (flag === '--variant') variants.push(parseVariant(value));
    else if (flag === '--method') o.method = value as WrkMethod;
    else if (flag === '--rounds') o.rounds = Number(value);
    else if (flag === '--users') o.users = Number(value);
    else if (flag === '--duration') o.duration = Number(value);
    else if (flag === '--connections') o.connections = Number(value);
    else if (flag === '--open-loop') o.openLoop = Number(value);
    else if (flag === '--open-loop-connections') o.openLoopConnections = Number(value);
    else throw new Error(`unknown option ${flag}`);
  }
  if (variants.length < 1) throw new Error('at least one --variant');
  return { ...o, variants };
}

async function startVariant(v: Variant, env: Record<string, string>, live: Set<FarmProcess>) {
  const specs: { name: string; role: Role; env: Record<string, string> }[] =
    v.shape === 'all'
      ? [{ name: 'all', role: 'all', env: {} }]
      : [
          { name: 'api', role: 'api', env: {} },
          { name: 'workers-1', role: 'workers', env: { CRYPTO_THREADS: '1' } },
          { name: 'workers-2', role: 'workers', env: { CRYPTO_THREADS: '1' } },
        ];
  const procs: FarmProcess[] = [];
  for (const s of specs) {
    const p = await startFarmProcess({
      name: `${v.name}-${s.name}`,
      role: s.role,
      // Each variant a farm of its own in Redis: the farm records its shard count (shared/farm/shard-count.ts),
      // and variants may differ in SHARD_COUNT.
      env: { ...env, KEY_PREFIX: `bench-${v.name.replace(/[^A-Za-z0-9_-]/g, '_')}`, ...s.env, ...v.env },
      logDir: LOG_DIR,
      ...(v.cli ? { cli: v.cli } : {}),
    });
    live.add(p);
    procs.push(p);
  }
  return procs;
}

/** System calls that write (write, writev, sendmsg...) and read so far by a process's main thread (/proc). */
function mainThreadSyscalls(pid: number): { writes: number; reads: number } {
  try {
    const io = readFileSync(`/proc/${pid}/task/${pid}/io`, 'utf8');
    const at = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? Number.NaN);
    return { writes: at('syscw'), reads: at('syscr') };
  } catch {
    return { writes: Number.NaN, reads: Number.NaN };
  }
}

/** The farm's event-loop delay since the last scrape (prom-client resets it at each), ms. */
function eventLoopLag(samples: readonly Sample[]) {
  const at = (name: string) =>
    round((sampleValue(samples, `keyfarm_nodejs_eventloop_lag_${name}_seconds`) ?? Number.NaN) * 1000, 2);
  return { p50: at('p50'), p99: at('p99'), max: at('max'), mean: at('mean') };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const live = new Set<FarmProcess>();
  let services: BenchServices | undefined;
  try {
    services = await startBenchServices(DATA_DIR);
    mkdirSync(LOG_DIR, { recursive: true });
    const env = {
      DATABASE_URL: services.databaseUrl,
      REDIS_URL: services.redisUrl,
      KEY_PREFIX: 'bench',
      DATA_DIR,
      MASTER_KEY_PATH: path.join(DATA_DIR, 'master.key'),
      LOG_LEVEL: 'info', // a workers-only process is ready once it logs that it started
      RATE_LIMIT_ALLOWLIST: '127.0.0.0/8,::1/128',
    };
    const migrate = await startFarmProcess({ name: 'migrate', role: 'migrate', env, logDir: LOG_DIR });
    await migrate.stop();
    const setup = await startFarmProcess({ name: 'setup', role: 'api', env, logDir: LOG_DIR });
    live.add(setup);
    const users = await seedUsers(setup.url!, args.users, 4);
    await setup.stop();
    live.delete(setup);
    const tokens = path.join(DATA_DIR, 'tokens.txt');
    const script = path.join(DATA_DIR, 'load.lua');
    writeTokenFile(tokens, users);
    writeSignEventScript(script, tokens, args.method);
    log(`${users.length} users; ${args.method} c=${args.connections} ${args.duration}s x ${args.rounds} rounds`);

    const byVariant = new Map<
      string,
      { cpu: number[]; rps: number[]; p99: number[]; redisUs: number[]; redisUsPerJob: number[] }
    >();
    const counters = new Redis(services.redisUrl);
    /** Keeps a run's figures for the summary; returns Redis's CPU µs per job. */
    const record = (
      name: string,
      farmMs: number,
      rps: number,
      p99: number,
      redis: ReturnType<typeof costBetween>,
      requests: number,
    ) => {
      const redisUsPerJob = redis.jobs > 0 ? (redis.cpuUsPerRequest * requests) / redis.jobs : Number.NaN;
      const entry = byVariant.get(name) ?? { cpu: [], rps: [], p99: [], redisUs: [], redisUsPerJob: [] };
      entry.cpu.push(farmMs);
      entry.rps.push(rps);
      entry.p99.push(p99);
      entry.redisUs.push(redis.cpuUsPerRequest);
      entry.redisUsPerJob.push(redisUsPerJob);
      byVariant.set(name, entry);
      return redisUsPerJob;
    };
    for (let round_ = 0; round_ < args.rounds; round_++) {
      const order = round_ % 2 === 0 ? args.variants : [...args.variants].reverse();
      for (const v of order) {
        const procs = await startVariant(v, env, live);
        const base = procs.find((p) => p.url)!.url!;
        if (v.shape === 'split') await sleep(6000); // shards settle between the workers
        const wrk = (d: number, label: string, startAt = 0) =>
          runWrk({
            url: base,
            scriptFile: script,
            connections: args.connections,
            threads: 1,
            durationS: d,
            startAt,
            outputFile: path.join(LOG_DIR, `${v.name}-${label}.txt`),
          });
        let warmed = 0;
        for (let w = 0; w < 6 && warmed < users.length * 1.5; w++)
          warmed += (await wrk(3, `warm${w}`, warmed)).requests;
        const load = loadavg()[0]!;
        if (args.openLoop > 0) {
          const m0 = await fetchMetrics(base); // also resets the event-loop delay histogram
          const before = snapshot(procs, services);
          const sys0 = procs.map((p) => mainThreadSyscalls(p.pid));
          const redisBefore = await readCounters(counters);
          const o = await runOpenLoop({
            url: base,
            rate: args.openLoop,
            connections: args.openLoopConnections,
            durationS: args.duration,
            tokenFile: tokens,
            scriptFile: path.join(DATA_DIR, 'open-loop.lua'),
            outputFile: path.join(LOG_DIR, `${v.name}-open-loop-${round_}.txt`),
          });
          const redisAfter = await readCounters(counters);
          const after = snapshot(procs, services);
          const sys1 = procs.map((p) => mainThreadSyscalls(p.pid));
          const perRequest = (k: 'writes' | 'reads') =>
            round(sys1.reduce((n, s, i) => n + s[k] - sys0[i]![k], 0) / Math.max(1, o.requests), 2);
          const m1 = await fetchMetrics(base);
          const lag = eventLoopLag(m1);
          const delta = (name: string) => (sampleValue(m1, name) ?? 0) - (sampleValue(m0, name) ?? 0);
          const itemsPerJob = round(delta('keyfarm_job_items_sum') / delta('keyfarm_job_items_count'), 2);
          const gc = (kind: string) => {
            const at = (m: readonly Sample[], n: string) =>
              sampleValue(m, `keyfarm_nodejs_gc_duration_seconds_${n}`, { kind }) ?? 0;
            const count = at(m1, 'count') - at(m0, 'count');
            return `${kind} ${count} (${round(((at(m1, 'sum') - at(m0, 'sum')) / Math.max(1, count)) * 1000, 2)} ms)`;
          };
          const cpu = cpuBetween(before, after, procs, ourPids(procs, services), o.requests);
          const redis = costBetween(redisBefore, redisAfter, o.requests);
          record(v.name, cpu.farmMsPerRequest, o.achievedRps, o.latencyMs.p99, redis, o.requests);
          log(
            `${v.name} round ${round_ + 1}: open loop ${o.offeredRps}/s, achieved ${o.achievedRps}/s, from the scheduled send p50 ${o.latencyMs.p50} ms, p90 ${o.latencyMs.p90} ms, p99 ${o.latencyMs.p99} ms, p99.9 ${o.latencyMs.p999} ms, max ${o.latencyMs.max} ms; from the send p99 ${o.serviceLatencyMs.p99} ms; sends late p99 ${o.sendLateMs.p99} ms; non-2xx ${o.non2xx}, errors ${o.errors}; event-loop delay ${JSON.stringify(lag)}; ${itemsPerJob} requests per job; main-thread system calls per request: ${perRequest('writes')} writes, ${perRequest('reads')} reads; Redis ${redis.cpuUsPerRequest} µs/req; GC ${gc('minor')}, ${gc('major')}; farm ${Math.round(cpu.farmMsPerRequest * 1000)} µs/req, load ${load.toFixed(2)}, cores ${JSON.stringify(cpu.cores)}, main ${JSON.stringify(cpu.mainThreadCores)}`,
          );
        } else {
          const before = snapshot(procs, services);
          const redisBefore = await readCounters(counters);
          const r = await wrk(args.duration, `run${round_}`);
          const redisAfter = await readCounters(counters);
          const after = snapshot(procs, services);
          const cpu = cpuBetween(before, after, procs, ourPids(procs, services), r.requests);
          const redis = costBetween(redisBefore, redisAfter, r.requests);
          const redisUsPerJob = record(v.name, cpu.farmMsPerRequest, r.rps, r.latencyMs.p99, redis, r.requests);
          log(
            `${v.name} round ${round_ + 1}: farm ${Math.round(cpu.farmMsPerRequest * 1000)} µs/req, Redis ${redis.commandsPerRequest} commands and ${redis.cpuUsPerRequest} µs/req (${redis.itemsPerJob} req/job, ${Math.round(redisUsPerJob)} µs/job), ${r.rps} req/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, non-2xx ${r.non2xx}, load ${load.toFixed(2)}, cores ${JSON.stringify(cpu.cores)}, main ${JSON.stringify(cpu.mainThreadCores)}`,
          );
        }
        for (const p of procs) {
          await p.stop();
          live.delete(p);
        }
      }
    }
    const summary = [...byVariant].map(([name, e]) => ({
      name,
      cpuUsPerRequest: e.cpu.map((c) => Math.round(c * 1000)),
      medianCpuUs: Math.round(median(e.cpu) * 1000),
      medianRps: round(median(e.rps)),
      medianP99Ms: round(median(e.p99), 2),
      redisUsPerRequest: e.redisUs,
      medianRedisUs: round(median(e.redisUs), 1),
      medianRedisUsPerJob: Math.round(median(e.redisUsPerJob)),
    }));
    counters.disconnect();
    for (const s of summary)
      log(
        `${s.name}: median ${s.medianCpuUs} µs/req (${s.cpuUsPerRequest.join(', ')}), Redis median ${s.medianRedisUs} µs/req (${s.redisUsPerRequest.join(', ')}), ${s.medianRedisUsPerJob} µs/job, ${s.medianRps} req/s, p99 ${s.medianP99Ms} ms`,
      );
    writeFileSync(path.join(DATA_DIR, 'summary.json'), JSON.stringify(summary, null, 2));
  } finally {
    for (const p of live) await p.stop().catch(() => undefined);
    await services?.stop().catch(() => undefined);
  }
}

main().catch((err: unknown) => {
  console.error(`ab failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
