// `npm run bench`: sign_event throughput and latency of Keyfarm on this machine, all-in-one and split,
// against the raw Schnorr rate of its cores. See docs/BENCHMARKS.md.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseConfig } from '../shared/config.js';
import { busiestOthers, processTable } from './cpu-time.js';
import { waitForQuiet } from './quiet.js';
import { startBenchServices, type BenchServices } from './bench-services.js';
import { PROJECT_ROOT, startFarmProcess, type FarmProcess } from './farm-process.js';
import { machineInfo } from './machine-info.js';
import {
  USAGE,
  UsageError,
  parseOptions,
  type BenchOptions,
  type HttpScenarioName,
  type ScenarioName,
} from './options.js';
import { measureCryptoCeiling, measureRawSchnorrRate } from './raw-schnorr.js';
import { startNoopServer } from './noop-server.js';
import { resolveCryptoBackend } from '../shared/nostr/crypto-backend.js';
import { runWrk } from './wrk-load.js';
import { BAR, printReport, withRatios, writeReport, type BenchReport } from './report.js';
import {
  runInterleaved,
  runScenario,
  scenarioProcesses,
  type ScenarioContext,
  type ScenarioResult,
} from './scenario.js';
import { startLocalRedisCluster } from '../test/support/redis-cluster.js';
import { runNip46Scenario, type Nip46Result } from './nip46/nip46-scenario.js';
import { forgetRecordedSecrets, scanLogsForSecrets } from './secret-check.js';
import { seedUsers, writeTokenFile, type BenchUser } from './seed-users.js';
import { round } from './stats.js';
import { writeSignEventScript } from './wrk-load.js';

const DATA_DIR = path.join(PROJECT_ROOT, '.data', 'bench');
const LOG_DIR = path.join(DATA_DIR, 'logs');
const TOKEN_FILE = path.join(DATA_DIR, 'tokens.txt');
const WRK_SCRIPT = path.join(DATA_DIR, 'sign-event.lua');
const GPK_SCRIPT = path.join(DATA_DIR, 'get-public-key.lua');
const RESULTS_DIR = path.join(PROJECT_ROOT, 'bench', 'results');
/** The scenarios whose timed runs alternate when both run. */
const INTERLEAVED: readonly HttpScenarioName[] = ['all-in-one', 'split'];

const log = (message: string) => console.log(`[bench] ${message}`);

const live = new Set<FarmProcess>();
let services: BenchServices | undefined;

async function cleanUp(): Promise<void> {
  for (const p of live) await p.stop().catch(() => undefined);
  live.clear();
  await services?.stop().catch(() => undefined);
  services = undefined;
  rmSync(TOKEN_FILE, { force: true });
  forgetRecordedSecrets();
}

function sharedEnv(s: BenchServices): Record<string, string> {
  return {
    DATABASE_URL: s.databaseUrl,
    REDIS_URL: s.redisUrl,
    KEY_PREFIX: 'bench',
    DATA_DIR,
    MASTER_KEY_PATH: path.join(DATA_DIR, 'master.key'),
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
    // The bench registers and logs in its users from this host, far past the request limits.
    RATE_LIMIT_ALLOWLIST: '127.0.0.0/8,::1/128',
  };
}

async function setUpUsers(env: Record<string, string>, opts: BenchOptions): Promise<BenchUser[]> {
  const migrate = await startFarmProcess({ name: 'setup-migrate', role: 'migrate', env, logDir: LOG_DIR });
  await migrate.stop();
  const api = await startFarmProcess({ name: 'setup-api', role: 'api', env, logDir: LOG_DIR });
  live.add(api);
  try {
    return await seedUsers(api.url!, opts.users, opts.seedConcurrency, (done) => log(`  ${done}/${opts.users} users`));
  } finally {
    await api.stop();
    live.delete(api);
  }
}

/**
 * All-in-one on a fresh local Redis Cluster (3 masters, 3 replicas) over the same PostgreSQL and users:
 * Redis's cost per request is read on each master.
 */
async function runClusterScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  log('starting a local Redis Cluster (3 masters, 3 replicas)');
  const cluster = await startLocalRedisCluster();
  try {
    const { REDIS_URL: _plain, ...env } = ctx.env;
    const redisServers = (await cluster.masters()).map((port) => ({ name: String(port), client: cluster.node(port) }));
    return await runScenario('cluster', { ...ctx, env: { ...env, ...cluster.env }, redisServers });
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  let opts: BenchOptions;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n${USAGE}`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
  if (!existsSync(path.join(PROJECT_ROOT, 'dist', 'bin', 'keyfarm.js')))
    throw new Error('dist/bin/keyfarm.js is missing: build first (npm run build)');
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  log(
    `${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, node ${machine.node}, load average ${machine.loadAverageAtStart.join(' ')}`,
  );

  log(`starting embedded PostgreSQL and Redis under ${path.relative(PROJECT_ROOT, DATA_DIR)} (wiped)`);
  services = await startBenchServices(DATA_DIR);
  mkdirSync(LOG_DIR, { recursive: true });
  const env = { ...sharedEnv(services), CRYPTO_BACKEND: opts.cryptoBackend };
  const config = parseConfig(env);

  const seedStart = performance.now();
  let users: BenchUser[] = [];
  if (opts.scenarios.some((n) => n !== 'nip46')) {
    log(
      `creating ${opts.users} users (register + OAuth authorization + access token), ${opts.seedConcurrency} at a time`,
    );
    users = await setUpUsers(env, opts);
    log(`  done in ${round((performance.now() - seedStart) / 1000)} s`);
  }
  const seedSeconds = round((performance.now() - seedStart) / 1000);
  writeTokenFile(TOKEN_FILE, users);
  writeSignEventScript(WRK_SCRIPT, TOKEN_FILE);
  writeSignEventScript(GPK_SCRIPT, TOKEN_FILE, 'get_public_key');

  log(`raw Schnorr rate, ${machine.cores} threads, ${opts.rawSchnorrMs} ms`);
  const quietWait = opts.quietWaitS > 0 ? await waitForQuiet(new Set([process.pid]), opts.quietWaitS) : undefined;
  const tableBefore = processTable();
  const rawStart = performance.now();
  const raw = await measureRawSchnorrRate({ threads: machine.cores, durationMs: opts.rawSchnorrMs });
  const rawWallS = (performance.now() - rawStart) / 1000;
  // Other people's processes competing with the measurement for the cores.
  const competing = busiestOthers(tableBefore, processTable(), new Set([process.pid]), 1000);
  const otherCoresDuringRaw = round(competing.reduce((t, o) => t + o.seconds, 0) / rawWallS, 2);
  log(
    `  ${raw.totalOpsPerSec} signatures/s (${raw.perThreadOpsPerSec.join(' + ')}); other processes used ${otherCoresDuringRaw} cores meanwhile`,
  );

  // The two ceilings the farm is reported against, in the same run: its crypto alone (a sign and a verify
  // per request, every core, the farm's backend), and HTTP alone (a no-op Fastify route, the same wrk).
  const ceilingBackend = resolveCryptoBackend(opts.cryptoBackend).backend.name;
  log(`crypto ceiling: ${ceilingBackend} sign + verify per request, ${machine.cores} threads`);
  const cryptoCeiling = await measureCryptoCeiling({
    threads: machine.cores,
    durationMs: opts.rawSchnorrMs,
    backend: ceilingBackend,
  });
  log(`  ${cryptoCeiling.totalOpsPerSec} requests/s of crypto (${cryptoCeiling.perThreadOpsPerSec.join(' + ')})`);
  const noop = await startNoopServer();
  let noopRoute: { rps: number; p99Ms: number; connections: number; durationS: number };
  try {
    const r = await runWrk({
      url: noop.url,
      scriptFile: WRK_SCRIPT,
      connections: opts.connections,
      threads: opts.wrkThreads,
      durationS: opts.durationS,
      outputFile: path.join(LOG_DIR, 'noop-wrk.txt'),
    });
    noopRoute = { rps: r.rps, p99Ms: r.latencyMs.p99, connections: opts.connections, durationS: opts.durationS };
  } finally {
    await noop.stop();
  }
  log(`no-op Fastify route, same wrk: ${noopRoute.rps} req/s, p99 ${noopRoute.p99Ms} ms`);

  const results: ScenarioResult[] = [];
  let nip46: Nip46Result | undefined;
  // all-in-one and split are compared: when both run, their timed runs alternate (scenario.ts).
  const interleaved = INTERLEAVED.filter((n) => opts.scenarios.includes(n));
  // A const the closure below can see as set (services is the module's, for the exit handler).
  const benchServices = services;
  const contextOf = (name: ScenarioName): ScenarioContext => ({
    opts,
    // Each scenario a farm of its own in Redis: interleaved ones are up at once.
    env: { ...env, KEY_PREFIX: `bench-${name}` },
    logDir: LOG_DIR,
    users,
    wrkScript: WRK_SCRIPT,
    tokenFile: TOKEN_FILE,
    openLoopScript: path.join(DATA_DIR, 'open-loop.lua'),
    getPublicKeyScript: GPK_SCRIPT,
    services: benchServices,
    leaseTtlMs: config.LEASE_TTL_MS,
    log,
    live,
  });
  for (const name of opts.scenarios) {
    const ctx = contextOf(name);
    if (name === 'nip46') nip46 = await runNip46Scenario(ctx);
    else if (name === 'cluster') results.push(await runClusterScenario(ctx));
    else if (interleaved.length < 2) results.push(await runScenario(name, ctx));
    else if (name === interleaved[0]) results.push(...(await runInterleaved(interleaved, contextOf)));
  }

  const secretCheck = scanLogsForSecrets(LOG_DIR, DATA_DIR);
  const allInOne = results.find((s) => s.name === 'all-in-one');
  const report: BenchReport = {
    startedAt,
    finishedAt: new Date().toISOString(),
    machine,
    settings: {
      runs: opts.runs,
      users: opts.users,
      connections: opts.connections,
      durationS: opts.durationS,
      warmupS: opts.warmupS,
      wrkThreads: opts.wrkThreads,
      quietWaitS: opts.quietWaitS,
      coldUsers: opts.coldUsers,
      verifySample: opts.verifySample,
      load: 'wrk, one process, Lua script rotating the bearer token over all users; one sign_event (kind 1) per request',
      farm: {
        SHARD_COUNT: config.SHARD_COUNT,
        CRYPTO_THREADS: config.CRYPTO_THREADS,
        QUEUE_LIMIT: config.QUEUE_LIMIT,
        RPC_TIMEOUT_MS: config.RPC_TIMEOUT_MS,
        CACHE_MAX_BYTES: config.CACHE_MAX_BYTES,
        DB_POOL_SIZE: config.DB_POOL_SIZE,
        LOG_LEVEL: config.LOG_LEVEL,
        keyManager: 'local (master key file)',
        servers: 'embedded PostgreSQL and Redis, shared by every process',
      },
      scenarios: Object.fromEntries(
        opts.scenarios.map((n) => [
          n,
          n === 'nip46'
            ? [{ name: 'all', role: 'all', env: { BUNKER_RELAYS: 'the bench relay' } }, { name: 'relay' }]
            : scenarioProcesses(n, opts),
        ]),
      ),
      nip46Clients: opts.nip46Clients,
      cryptoBackend: opts.cryptoBackend,
      openLoop: { rate: opts.openLoopRate, connections: opts.openLoopConnections, tool: 'wrk Lua open loop' },
      getPublicKeyConnections: opts.getPublicKeyConnections,
      interleaved: interleaved.length > 1 ? interleaved : [],
    },
    setup: { users: users.length, seedSeconds },
    rawSchnorr: { ...raw, durationMs: opts.rawSchnorrMs, otherCoresDuringRaw, ...(quietWait ? { quietWait } : {}) },
    cryptoCeiling: { ...cryptoCeiling, durationMs: opts.rawSchnorrMs },
    noopRoute,
    scenarios: withRatios(results, raw, cryptoCeiling, noopRoute),
    ...(nip46 ? { nip46 } : {}),
    bar: {
      ...BAR,
      ...(allInOne ? { allInOneMet: allInOne.median.rps >= BAR.rps && allInOne.median.p99Ms <= BAR.p99Ms } : {}),
    },
    secretCheck,
  };
  printReport(report);
  const file = writeReport(report, RESULTS_DIR);
  log(
    `results: ${path.relative(PROJECT_ROOT, file)}, bench/results/latest.json and a line per scenario in bench/results/history.jsonl; farm logs in ${path.relative(PROJECT_ROOT, LOG_DIR)}`,
  );
  if (secretCheck.leaks.length > 0) {
    console.error(`secrets found in farm logs:\n${secretCheck.leaks.join('\n')}`);
    process.exitCode = 1;
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void cleanUp().finally(() => process.exit(130));
  });
}

main()
  .catch((err: unknown) => {
    console.error(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  })
  .finally(() => cleanUp());
