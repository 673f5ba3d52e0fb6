// One deployment shape under load: start its processes over the shared servers, sample cold-key latency,
// warm up, run the timed load N times with the CPU time of every process around each run, verify a
// sample of signatures, stop.
import { loadavg } from 'node:os';
import path from 'node:path';
import {
  busiestOthers,
  machineCpuSeconds,
  mainThreadCpuSeconds,
  processCpuSeconds,
  processTable,
  processTreeCpuSeconds,
  selfCpuSeconds,
  type ProcessTable,
} from './cpu-time.js';
import type { BenchServices } from './bench-services.js';
import {
  cacheFootprint,
  farmBreakdown,
  fetchMetrics,
  type CacheFootprint,
  type FarmBreakdown,
} from './farm-metrics.js';
import { startFarmProcess, type FarmProcess, type Role } from './farm-process.js';
import type { BenchOptions, HttpScenarioName } from './options.js';
import type { BenchUser } from './seed-users.js';
import { measureColdKeys, verifySample, type ColdKeyLatency, type SampleCheck } from './sign-probe.js';
import { median, medianLatency, round } from './stats.js';
import { runWrk, type WrkResult } from './wrk-load.js';
import { runOpenLoop, type OpenLoopResult } from './open-loop.js';
import { waitForQuiet, type QuietWait } from './quiet.js';
import { Redis } from 'ioredis';
import {
  costBetween,
  idleRate,
  readCounters,
  sumCounters,
  type CounterSource,
  type IdleRate,
  type RedisCost,
  type RedisCounters,
} from './redis-cost.js';
import { sentCommands } from './redis-monitor.js';

export interface ProcessSpec {
  name: string;
  role: Role;
  env: Record<string, string>;
}

export function scenarioProcesses(name: HttpScenarioName, opts: BenchOptions): ProcessSpec[] {
  if (name === 'all-in-one') return [{ name: 'all', role: 'all', env: {} }];
  // cluster: the same process; run.ts gives it REDIS_CLUSTER_NODES of the local cluster.
  if (name === 'cluster') return [{ name: 'all', role: 'all', env: {} }];
  return [
    { name: 'api', role: 'api', env: {} },
    ...Array.from({ length: opts.splitWorkers }, (_, i) => ({
      name: `workers-${i + 1}`,
      role: 'workers' as const,
      env: { CRYPTO_THREADS: String(opts.splitCryptoThreads) },
    })),
  ];
}

export interface ScenarioContext {
  opts: BenchOptions;
  /** Settings every process gets (server URLs, key prefix, data dir, master key). */
  env: Record<string, string>;
  logDir: string;
  users: readonly BenchUser[];
  wrkScript: string;
  /** The users' access tokens, one a line, and where the open-loop script goes (neither among the logs). */
  tokenFile: string;
  openLoopScript: string;
  /** The same load with get_public_key instead of sign_event. */
  getPublicKeyScript: string;
  services: BenchServices;
  /** Lease TTL of the farm: shards settle among workers within about two of these. */
  leaseTtlMs: number;
  log(message: string): void;
  /** Processes started and not yet stopped, so an interrupted bench can stop them. */
  live: Set<FarmProcess>;
  /** The Redis servers whose cost is counted (default: the one at services.redisUrl). */
  redisServers?: CounterSource[];
}

/**
 * CPU seconds each party used during one load run, and the same as cores busy on average. Parties: each
 * Keyfarm process, redis, postgres (with its backends), wrk, bench (this process), irq (interrupt and
 * softirq time, where loopback networking lands), other (the rest of machineBusy: other people's work).
 */
export interface CpuUse {
  seconds: Record<string, number>;
  cores: Record<string, number>;
  /** Each Keyfarm process's main thread (its event loop) alone, in cores: near 1.0 means it is the limit. */
  mainThreadCores: Record<string, number>;
  /** The busiest processes that are not ours, in cores. */
  busiestOthers: { process: string; cores: number }[];
  /** CPU of the Keyfarm processes per answered request. */
  farmMsPerRequest: number;
}

export interface LoadRun extends WrkResult {
  run: number;
  /** How long the run waited for the machine to be quiet, and how busy others still were. */
  quietWait: QuietWait;
  cpu: CpuUse;
  /** Redis's commands and CPU per answered request over the run (every server added up). */
  redis: RedisCost;
  /** On a cluster: each master's share, by port. */
  redisPerServer?: Record<string, RedisCost>;
}

export interface ScenarioMedians {
  rps: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
  cpuCores: Record<string, number>;
  mainThreadCores: Record<string, number>;
  farmMsPerRequest: number;
  redisCommandsPerRequest: number;
  redisCpuUsPerRequest: number;
  /** The same less Redis's idle work over the run, and per job. */
  redisMarginal: { commandsPerRequest: number; cpuUsPerRequest: number; commandsPerJob: number; cpuUsPerJob: number };
  redisItemsPerJob: number;
  /** On a cluster: each master's commands and CPU µs per request. */
  redisPerServer?: Record<string, { commandsPerRequest: number; cpuUsPerRequest: number }>;
}

/** One extra load run with every command slow-logged (--redis-monitor S): what clients send, per answered request. */
export interface MonitoredRun {
  requests: number;
  /** Commands clients sent per request (a script's own commands are not counted). */
  sentPerRequest: number;
  /** Per command or script: calls and µs (time inside Redis's command, per the slow log) per request. */
  perRequest: { command: string; calls: number; us: number }[];
}

export interface ScenarioResult {
  name: HttpScenarioName;
  /** Redis's work with the farm idle, read before the runs. */
  redisIdle?: IdleRate;
  processes: { name: string; role: Role; env: Record<string, string>; notReady?: Record<string, string> }[];
  coldKeys: ColdKeyLatency;
  warmup: WarmUp;
  cacheFootprint?: CacheFootprint;
  runs: LoadRun[];
  /** The farm's own view of the runs (all of them together). */
  farmView: FarmBreakdown;
  median: ScenarioMedians;
  verify: SampleCheck;
  /** all-in-one only: sign_event offered at a constant rate. */
  openLoop?: OpenLoopResult[];
  /** all-in-one only: get_public_key at its own connection count; median req/s and p99 of the runs. */
  getPublicKey?: { connections: number; runs: WrkResult[]; medianRps: number; medianP99Ms: number };
  redisMonitor?: MonitoredRun;
}

export interface CpuSnapshot {
  wallS: number;
  procs: Record<string, number | undefined>;
  mainThreads: Record<string, number | undefined>;
  bench: number;
  benchChildren: number;
  machineBusy: number;
  machineIrq: number;
  table: ProcessTable;
}

/** A process whose CPU time is counted: a Keyfarm process, or the NIP-46 bench relay. */
export type Measured = Pick<FarmProcess, 'name' | 'pid'>;

export function ourPids(procs: readonly Measured[], services: BenchServices): Set<number> {
  const pids = new Set<number>([process.pid, ...procs.map((p) => p.pid)]);
  if (services.redisPid) pids.add(services.redisPid);
  if (services.postgresPid) pids.add(services.postgresPid);
  return pids;
}

export function snapshot(procs: readonly Measured[], services: BenchServices): CpuSnapshot {
  const self = selfCpuSeconds();
  const values: Record<string, number | undefined> = {};
  const mainThreads: Record<string, number | undefined> = {};
  for (const p of procs) {
    values[p.name] = processCpuSeconds(p.pid);
    mainThreads[p.name] = mainThreadCpuSeconds(p.pid);
  }
  if (services.redisPid) values.redis = processCpuSeconds(services.redisPid);
  if (services.postgresPid) values.postgres = processTreeCpuSeconds(services.postgresPid);
  const machine = machineCpuSeconds();
  return {
    wallS: performance.now() / 1000,
    procs: values,
    mainThreads,
    bench: self.self,
    benchChildren: self.reapedChildren,
    machineBusy: machine.busy,
    machineIrq: machine.irq,
    table: processTable(),
  };
}

export function cpuBetween(
  before: CpuSnapshot,
  after: CpuSnapshot,
  farm: readonly Measured[],
  ours: ReadonlySet<number>,
  requests: number,
): CpuUse {
  const wall = after.wallS - before.wallS;
  const seconds: Record<string, number> = {};
  for (const [name, end] of Object.entries(after.procs)) {
    const start = before.procs[name];
    if (start !== undefined && end !== undefined) seconds[name] = end - start;
  }
  // wrk is the only child the bench reaps during a run
  seconds.wrk = after.benchChildren - before.benchChildren;
  seconds.bench = after.bench - before.bench;
  const oursSeconds = Object.values(seconds).reduce((a, b) => a + b, 0);
  seconds.irq = after.machineIrq - before.machineIrq;
  seconds.machineBusy = after.machineBusy - before.machineBusy;
  seconds.other = Math.max(0, seconds.machineBusy - oursSeconds - seconds.irq);
  const farmSeconds = farm.reduce((sum, p) => sum + (seconds[p.name] ?? 0), 0);
  const cores: Record<string, number> = {};
  for (const [name, s] of Object.entries(seconds)) {
    seconds[name] = round(s, 2);
    cores[name] = round(s / wall, 2);
  }
  const mainThreadCores: Record<string, number> = {};
  for (const [name, end] of Object.entries(after.mainThreads)) {
    const start = before.mainThreads[name];
    if (start !== undefined && end !== undefined) mainThreadCores[name] = round((end - start) / wall, 2);
  }
  const others = busiestOthers(before.table, after.table, ours).map((o) => ({
    process: o.process,
    cores: round(o.seconds / wall, 2),
  }));
  return {
    seconds,
    cores,
    mainThreadCores,
    busiestOthers: others,
    farmMsPerRequest: requests > 0 ? round((farmSeconds * 1000) / requests, 3) : Number.NaN,
  };
}

function mediansOf(runs: readonly LoadRun[]): ScenarioMedians {
  const m = (f: (r: LoadRun) => number) => median(runs.map(f));
  const cpuCores: Record<string, number> = {};
  for (const name of Object.keys(runs[0]?.cpu.cores ?? {}))
    cpuCores[name] = round(
      m((r) => r.cpu.cores[name] ?? 0),
      2,
    );
  const mainThreadCores: Record<string, number> = {};
  for (const name of Object.keys(runs[0]?.cpu.mainThreadCores ?? {}))
    mainThreadCores[name] = round(
      m((r) => r.cpu.mainThreadCores[name] ?? 0),
      2,
    );
  return {
    rps: round(m((r) => r.rps)),
    ...medianLatency(runs),
    non2xx: m((r) => r.non2xx),
    errors: m((r) => r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout),
    cpuCores,
    mainThreadCores,
    farmMsPerRequest: round(
      m((r) => r.cpu.farmMsPerRequest),
      3,
    ),
    redisCommandsPerRequest: round(
      m((r) => r.redis.commandsPerRequest),
      2,
    ),
    redisCpuUsPerRequest: round(
      m((r) => r.redis.cpuUsPerRequest),
      1,
    ),
    redisMarginal: {
      commandsPerRequest: round(
        m((r) => r.redis.marginal?.commandsPerRequest ?? Number.NaN),
        2,
      ),
      cpuUsPerRequest: round(
        m((r) => r.redis.marginal?.cpuUsPerRequest ?? Number.NaN),
        1,
      ),
      commandsPerJob: round(
        m((r) => r.redis.marginal?.commandsPerJob ?? Number.NaN),
        1,
      ),
      cpuUsPerJob: round(m((r) => r.redis.marginal?.cpuUsPerJob ?? Number.NaN)),
    },
    redisItemsPerJob: round(
      m((r) => r.redis.itemsPerJob),
      2,
    ),
    ...(runs[0]?.redisPerServer
      ? {
          redisPerServer: Object.fromEntries(
            Object.keys(runs[0].redisPerServer).map((n) => [
              n,
              {
                commandsPerRequest: round(
                  m((r) => r.redisPerServer?.[n]?.commandsPerRequest ?? 0),
                  2,
                ),
                cpuUsPerRequest: round(
                  m((r) => r.redisPerServer?.[n]?.cpuUsPerRequest ?? 0),
                  1,
                ),
              },
            ]),
          ),
        }
      : {}),
  };
}

/** A load run with every command slow-logged, tallied per answered request. */
export async function monitoredRun(
  redisUrl: string,
  load: () => Promise<{ requests: number; non2xx: number }>,
): Promise<MonitoredRun> {
  let answered = 0;
  const sent = await sentCommands(redisUrl, async () => {
    const r = await load();
    answered = Math.max(1, r.requests - r.non2xx);
  });
  return {
    requests: answered,
    sentPerRequest: round(
      sent.filter((c) => !c.command.startsWith('lua ')).reduce((t, c) => t + c.calls, 0) / answered,
      2,
    ),
    perRequest: sent.map((c) => ({
      command: c.command,
      calls: round(c.calls / answered, 3),
      us: round(c.usec / answered, 2),
    })),
  };
}

function perServer(
  servers: readonly CounterSource[],
  before: readonly RedisCounters[],
  after: readonly RedisCounters[],
  requests: number,
): Record<string, RedisCost> {
  return Object.fromEntries(
    servers.map((x, i) => {
      const c = costBetween(before[i]!, after[i]!, requests);
      return [x.name, { ...c, perCommand: c.perCommand.slice(0, 12) }];
    }),
  );
}

/** Seconds of no load over which Redis's idle rate is read, before a scenario's runs. */
const IDLE_WINDOW_S = 5;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface WarmUp {
  rounds: number;
  requests: number;
  non2xx: number;
  durationS: number;
}

const MAX_WARMUP_ROUNDS = 6;

/**
 * Load of `seconds` per round, each round starting where the last one stopped in the token list, until
 * every user has been asked once (so every key is cached) or MAX_WARMUP_ROUNDS have run.
 */
async function warmUp(
  users: number,
  seconds: number,
  runRound: (n: number, startAt: number) => Promise<WrkResult>,
  log: (m: string) => void,
): Promise<WarmUp> {
  const total: WarmUp = { rounds: 0, requests: 0, non2xx: 0, durationS: 0 };
  while (total.rounds < MAX_WARMUP_ROUNDS && (total.rounds === 0 || total.requests < users)) {
    const r = await runRound(total.rounds + 1, total.requests);
    total.rounds++;
    total.requests += r.requests;
    total.non2xx += r.non2xx;
    total.durationS += r.durationS;
  }
  log(`  warm-up: ${total.requests} requests in ${total.rounds} round(s) of ${seconds} s, ${total.non2xx} non-2xx`);
  if (total.requests < users)
    log(`  warning: warm-up reached ${total.requests} of ${users} users; some keys start cold`);
  return total;
}

async function startAll(name: HttpScenarioName, ctx: ScenarioContext): Promise<FarmProcess[]> {
  const started: FarmProcess[] = [];
  for (const spec of scenarioProcesses(name, ctx.opts)) {
    const proc = await startFarmProcess({
      name: `${name}-${spec.name}`,
      role: spec.role,
      env: { ...ctx.env, ...spec.env },
      logDir: ctx.logDir,
    });
    ctx.live.add(proc);
    started.push(proc);
    ctx.log(
      `  started ${spec.role} (${proc.name}, pid ${proc.pid})${proc.notReady ? `; /healthz/ready still fails ${JSON.stringify(proc.notReady)}` : ''}`,
    );
  }
  return started;
}

/** `runs` runs of one kind, one after another, numbered from 1. */
async function repeated<T>(runs: number, run: (n: number) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let n = 1; n <= runs; n++) results.push(await run(n));
  return results;
}

/** Load offered at a constant rate (the p99 under a steady load, not at saturation). */
function openLoopRuns(name: HttpScenarioName, base: string, ctx: ScenarioContext): Promise<OpenLoopResult[]> {
  const { opts } = ctx;
  return repeated(opts.runs, async (run) => {
    const r = await runOpenLoop({
      url: base,
      rate: opts.openLoopRate,
      connections: opts.openLoopConnections,
      durationS: opts.durationS,
      tokenFile: ctx.tokenFile,
      scriptFile: ctx.openLoopScript,
      outputFile: path.join(ctx.logDir, `${name}-open-loop-${run}.txt`),
    });
    ctx.log(
      `  open loop ${run}: offered ${r.offeredRps}/s, achieved ${r.achievedRps}/s, from the scheduled send p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, p99.9 ${r.latencyMs.p999} ms, max ${r.latencyMs.max} ms; from the actual send p50 ${r.serviceLatencyMs.p50} ms, p99 ${r.serviceLatencyMs.p99} ms; sends late p50 ${r.sendLateMs.p50} ms, p99 ${r.sendLateMs.p99} ms; non-2xx ${r.non2xx}, errors ${r.errors}, unanswered ${r.unanswered}, load ${loadavg()[0]!.toFixed(2)}`,
    );
    return r;
  });
}

/** get_public_key under wrk: the api's own answer, no job. */
async function getPublicKeyRuns(
  name: HttpScenarioName,
  base: string,
  ctx: ScenarioContext,
): Promise<NonNullable<ScenarioResult['getPublicKey']>> {
  const { opts } = ctx;
  const runs = await repeated(opts.runs, async (run) => {
    const r = await runWrk({
      url: base,
      scriptFile: ctx.getPublicKeyScript,
      connections: opts.getPublicKeyConnections,
      threads: opts.wrkThreads,
      durationS: opts.durationS,
      outputFile: path.join(ctx.logDir, `${name}-wrk-get-public-key-${run}.txt`),
    });
    ctx.log(
      `  get_public_key ${run}: ${r.rps} req/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, non-2xx ${r.non2xx}`,
    );
    return r;
  });
  return {
    connections: opts.getPublicKeyConnections,
    runs,
    medianRps: round(median(runs.map((r) => r.rps))),
    medianP99Ms: round(median(runs.map((r) => r.latencyMs.p99)), 2),
  };
}

/** One scenario's farm, started, sampled cold and warmed up: its timed runs may be interleaved with another's. */
export interface OpenScenario {
  readonly name: HttpScenarioName;
  /** One timed load run (numbered from 1), logged and kept. */
  timedRun(run: number): Promise<LoadRun>;
  /** The runs after the timed ones (Redis monitor, open loop, get_public_key), the checks, and the stop. */
  finish(): Promise<ScenarioResult>;
  /** Stops the farm (finish does it too). */
  close(): Promise<void>;
}

export async function runScenario(name: HttpScenarioName, ctx: ScenarioContext): Promise<ScenarioResult> {
  const scenario = await openScenario(name, ctx);
  try {
    await repeated(ctx.opts.runs, (run) => scenario.timedRun(run));
    return await scenario.finish();
  } finally {
    await scenario.close();
  }
}

/**
 * Runs all-in-one and split with their timed runs alternating (all-in-one first in odd rounds, split first
 * in even ones): the VM's speed drifts over minutes, and one scenario's runs after the other's would
 * compare two different machines. Both farms are up throughout, each under its own key prefix; the one
 * not under load is idle (leases and blocking reads, about a hundredth of a core).
 */
export async function runInterleaved(
  names: readonly HttpScenarioName[],
  ctx: (name: HttpScenarioName) => ScenarioContext,
): Promise<ScenarioResult[]> {
  const open: OpenScenario[] = [];
  try {
    for (const name of names) open.push(await openScenario(name, ctx(name)));
    const runs = ctx(names[0]!).opts.runs;
    for (let run = 1; run <= runs; run++)
      for (const scenario of run % 2 === 1 ? open : [...open].reverse()) await scenario.timedRun(run);
    const results: ScenarioResult[] = [];
    for (const scenario of open) results.push(await scenario.finish());
    return results;
  } finally {
    for (const scenario of open) await scenario.close();
  }
}

export async function openScenario(name: HttpScenarioName, ctx: ScenarioContext): Promise<OpenScenario> {
  const { opts, users } = ctx;
  ctx.log(`scenario ${name}`);
  const procs = await startAll(name, ctx);
  let closed = false;
  let ownStats: Redis | undefined;
  const close = async () => {
    if (closed) return;
    closed = true;
    ownStats?.disconnect();
    for (const p of [...procs].reverse()) {
      await p.stop();
      ctx.live.delete(p);
    }
  };
  try {
    const base = procs.find((p) => p.url)!.url!;
    // Let the workers divide the shards among themselves before anything is timed.
    await sleep(2 * ctx.leaseTtlMs);

    const cohort = users.slice(users.length - opts.coldUsers);
    const jit = users.slice(Math.max(0, users.length - opts.coldUsers - 20), users.length - opts.coldUsers);
    const coldKeys = await measureColdKeys(base, cohort, jit);
    ctx.log(
      `  cold key: first sign_event p50 ${coldKeys.coldMs.p50} ms, p95 ${coldKeys.coldMs.p95} ms, p99 ${coldKeys.coldMs.p99} ms; warm p50 ${coldKeys.warmMs.p50} ms (${coldKeys.users} users)`,
    );

    const wrkRun = (durationS: number, label: string, startAt = 0) =>
      runWrk({
        startAt,
        url: base,
        scriptFile: ctx.wrkScript,
        connections: opts.connections,
        threads: opts.wrkThreads,
        durationS,
        outputFile: path.join(ctx.logDir, `${name}-wrk-${label}.txt`),
      });

    const warmup = await warmUp(
      users.length,
      opts.warmupS,
      (n, startAt) => wrkRun(opts.warmupS, `warmup${n}`, startAt),
      ctx.log,
    );
    const metricsBefore = await fetchMetrics(base);
    const footprint = cacheFootprint(metricsBefore);
    const runsStart = performance.now();

    ownStats = ctx.redisServers ? undefined : new Redis(ctx.services.redisUrl);
    const servers = ctx.redisServers ?? [{ name: 'redis', client: ownStats! }];
    const readAll = () => Promise.all(servers.map((x) => readCounters(x.client)));
    const readSum = async () => sumCounters(await readAll());
    const idle = await idleRate(readSum, IDLE_WINDOW_S, servers.length);
    ctx.log(`  Redis idle: ${idle.commandsPerS} commands/s, ${idle.cpuUsPerS} µs CPU/s`);
    const runs: LoadRun[] = [];

    const timedRun = async (run: number): Promise<LoadRun> => {
      const quietWait =
        opts.quietWaitS > 0
          ? await waitForQuiet(ourPids(procs, ctx.services), opts.quietWaitS)
          : { waitedS: 0, otherCores: Number.NaN, quiet: false };
      if (!quietWait.quiet && opts.quietWaitS > 0)
        ctx.log(
          `  other processes still use ${quietWait.otherCores} cores after ${quietWait.waitedS} s; running anyway`,
        );
      const redisBefore = await readAll();
      const t0 = performance.now();
      const before = snapshot(procs, ctx.services);
      const result = await wrkRun(opts.durationS, `run${run}`);
      const after = snapshot(procs, ctx.services);
      // The window closes after the last answer: the jobs' tails (release, activity drain) fall in it.
      const redisAfter = await readAll();
      const answered = result.requests - result.non2xx;
      const redis = costBetween(sumCounters(redisBefore), sumCounters(redisAfter), answered, servers.length, {
        rate: idle,
        wallS: (performance.now() - t0) / 1000,
      });
      const redisPerServer = ctx.redisServers ? perServer(servers, redisBefore, redisAfter, answered) : undefined;
      const cpu = cpuBetween(before, after, procs, ourPids(procs, ctx.services), result.requests);
      const loadRun: LoadRun = { run, quietWait, ...result, cpu, redis, ...(redisPerServer ? { redisPerServer } : {}) };
      runs.push(loadRun);
      if (redisPerServer)
        ctx.log(
          `  per master: ${Object.entries(redisPerServer)
            .map(([n, c]) => `${n} ${c.commandsPerRequest} commands, ${c.cpuUsPerRequest} µs`)
            .join('; ')}`,
        );
      ctx.log(
        `  ${name} run ${run}: ${result.rps} req/s, p50 ${result.latencyMs.p50} ms, p95 ${result.latencyMs.p95} ms, p99 ${result.latencyMs.p99} ms, ` +
          `non-2xx ${result.non2xx}, Redis ${redis.commandsPerRequest} commands and ${redis.cpuUsPerRequest} µs CPU per request (less idle ${redis.marginal?.commandsPerRequest} and ${redis.marginal?.cpuUsPerRequest}; ${redis.itemsPerJob} requests per job, ${redis.marginal?.commandsPerJob} commands and ${redis.marginal?.cpuUsPerJob} µs per job), cores ${JSON.stringify(cpu.cores)}, main threads ${JSON.stringify(cpu.mainThreadCores)}, busiest others ${JSON.stringify(cpu.busiestOthers)}`,
      );
      return loadRun;
    };

    const finish = async (): Promise<ScenarioResult> => {
      try {
        const redisMonitor =
          opts.redisMonitorS > 0 && !ctx.redisServers
            ? await monitoredRun(ctx.services.redisUrl, () => wrkRun(opts.redisMonitorS, 'redis-monitor'))
            : undefined;
        if (redisMonitor)
          ctx.log(
            `  Redis commands sent per request ${redisMonitor.sentPerRequest}: ${redisMonitor.perRequest.map((c) => `${c.command} ${c.calls} (${c.us} µs)`).join(', ')}`,
          );

        const allInOne = name === 'all-in-one';
        const openLoop = allInOne && opts.openLoopRate > 0 ? await openLoopRuns(name, base, ctx) : undefined;
        const getPublicKey =
          allInOne && opts.getPublicKeyConnections > 0 ? await getPublicKeyRuns(name, base, ctx) : undefined;

        const httpProcess = procs.find((p) => p.url)!;
        const farmView = farmBreakdown(
          httpProcess.name,
          metricsBefore,
          await fetchMetrics(base),
          (performance.now() - runsStart) / 1000,
        );
        ctx.log(`  farm view: ${JSON.stringify(farmView)}`);

        const verify = await verifySample(base, users, opts.verifySample);
        ctx.log(`  verified ${verify.valid}/${verify.checked} signatures`);
        return {
          name,
          processes: scenarioProcesses(name, opts).map((s, i) => ({
            name: s.name,
            role: s.role,
            env: s.env,
            ...(procs[i]?.notReady ? { notReady: procs[i]!.notReady } : {}),
          })),
          coldKeys,
          warmup,
          ...(footprint ? { cacheFootprint: footprint } : {}),
          runs,
          farmView,
          median: mediansOf(runs),
          verify,
          ...(openLoop ? { openLoop } : {}),
          ...(getPublicKey ? { getPublicKey } : {}),
          ...(redisMonitor ? { redisMonitor } : {}),
          redisIdle: idle,
        };
      } finally {
        await close();
      }
    };

    return { name, timedRun, finish, close };
  } catch (err) {
    await close();
    throw err;
  }
}
