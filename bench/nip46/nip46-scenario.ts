// The NIP-46 section of the bench: the all-in-one farm with BUNKER_RELAYS set to a local relay (its own
// process), one user and bunker per client, every client connected with its secret, then closed-loop
// sign_event round trips: warm-up, N timed runs with the CPU of every process, a sample verified.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { verifyEvent as referenceVerifyEvent } from 'nostr-tools/pure';
import { call, registerUser } from '../../test/support/client.js';
import { farmBreakdown, fetchMetrics, type FarmBreakdown } from '../farm-metrics.js';
import { startFarmProcess, type FarmProcess } from '../farm-process.js';
import { waitForQuiet, type QuietWait } from '../quiet.js';
import { cpuBetween, ourPids, snapshot, type CpuUse, type Measured, type ScenarioContext } from '../scenario.js';
import { median, medianLatency, round } from '../stats.js';
import { Redis } from 'ioredis';
import { costBetween, idleRate, readCounters, type RedisCost } from '../redis-cost.js';
import { BunkerLoadClient, parseBunkerUrl } from './bunker-client.js';
import { runNip46Load, type Nip46LoadResult } from './nip46-load.js';

/** The bar on this machine: round trips through a local relay at 32 concurrent clients. */
export const NIP46_BAR = { rtPerSec: 300, p99Ms: 150, clients: 32 };

export interface Nip46Run extends Omit<Nip46LoadResult, 'signed'> {
  run: number;
  quietWait: QuietWait;
  cpu: CpuUse;
  /** Redis's commands and CPU per answered round trip over the run. */
  redis: RedisCost;
}

export interface Nip46Result {
  name: 'nip46';
  clients: number;
  relay: string;
  connectS: number;
  warmup: Omit<Nip46LoadResult, 'signed'>;
  runs: Nip46Run[];
  /** rpcMeanMs here: from taking the request off the relay to handing the response to the relays. */
  farmView: FarmBreakdown;
  median: {
    rtPerSec: number;
    p50Ms: number;
    p95Ms: number;
    p99Ms: number;
    errors: number;
    cpuCores: Record<string, number>;
    farmMsPerRoundTrip: number;
    redisCommandsPerRoundTrip: number;
    redisCpuUsPerRoundTrip: number;
    /** The same less Redis's idle work over the run. */
    redisMarginalCommandsPerRoundTrip: number;
    redisMarginalCpuUsPerRoundTrip: number;
    redisItemsPerJob: number;
  };
  verify: { checked: number; valid: number; rightSigner: number };
  relayStats?: { events: number; rejected: number; delivered: number };
  barMet: boolean;
}

interface RelayProcess extends Measured {
  url: string;
  child: ChildProcess;
  /** SIGTERM; resolves with the relay's counters. */
  stop(): Promise<Nip46Result['relayStats']>;
}

async function startRelay(): Promise<RelayProcess> {
  const script = fileURLToPath(new URL('./relay-main.js', import.meta.url));
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const iterator = lines[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) throw new Error('the bench relay exited before listening');
  const { port } = JSON.parse(first.value) as { port: number };
  return {
    name: 'relay',
    pid: child.pid!,
    url: `ws://127.0.0.1:${port}`,
    child,
    async stop() {
      if (child.exitCode !== null) return undefined;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const stats = await iterator.next();
      await exited;
      return stats.done ? undefined : JSON.parse(stats.value);
    },
  };
}

/** One user, one bunker authorization under the `full` policy, one connected client. */
async function connectedClient(base: string, relayUrl: string): Promise<{ client: BunkerLoadClient; pubkey: string }> {
  const user = await registerUser(base);
  const res = await call(
    base,
    'POST',
    '/api/user/bunker/create',
    { app_name: 'nip46 bench', policy_slug: 'full', relays: [relayUrl] },
    user.session,
  );
  if (res.status !== 201) throw new Error(`bunker/create: ${res.status} ${JSON.stringify(res.body)}`);
  const client = new BunkerLoadClient(parseBunkerUrl(res.body.bunker_url as string), relayUrl);
  await client.open();
  await client.connect();
  return { client, pubkey: user.pubkey };
}

const withoutSigned = ({ signed: _signed, ...rest }: Nip46LoadResult) => rest;

export async function runNip46Scenario(ctx: ScenarioContext): Promise<Nip46Result> {
  const { opts } = ctx;
  ctx.log(`scenario nip46 (${opts.nip46Clients} clients)`);
  const relay = await startRelay();
  let farm: FarmProcess | undefined;
  const clients: BunkerLoadClient[] = [];
  let relayStats: Nip46Result['relayStats'];
  try {
    farm = await startFarmProcess({
      name: 'nip46-all',
      role: 'all',
      env: { ...ctx.env, BUNKER_RELAYS: relay.url },
      logDir: ctx.logDir,
    });
    ctx.live.add(farm);
    ctx.log(`  started all (${farm.name}, pid ${farm.pid}) with a local relay at ${relay.url} (pid ${relay.pid})`);

    const connectStart = performance.now();
    const signers = new Map<BunkerLoadClient, string>();
    for (let i = 0; i < opts.nip46Clients; i += 8) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(8, opts.nip46Clients - i) }, () => connectedClient(farm!.url!, relay.url)),
      );
      for (const c of batch) {
        clients.push(c.client);
        signers.set(c.client, c.pubkey);
      }
    }
    const connectS = round((performance.now() - connectStart) / 1000, 2);
    ctx.log(`  ${clients.length} users registered, bunkers created and clients connected in ${connectS} s`);

    const warmup = await runNip46Load(clients, opts.warmupS);
    ctx.log(`  warm-up: ${warmup.roundTrips} round trips, ${warmup.errors.replied + warmup.errors.failed} errors`);

    const measured: Measured[] = [farm, relay];
    const metricsBefore = await fetchMetrics(farm.url!);
    const runsStart = performance.now();
    const runs: Nip46Run[] = [];
    const signed = [];
    const redisStats = new Redis(ctx.services.redisUrl);
    const idle = await idleRate(() => readCounters(redisStats), 5);
    for (let run = 1; run <= opts.runs; run++) {
      const quietWait =
        opts.quietWaitS > 0
          ? await waitForQuiet(ourPids(measured, ctx.services), opts.quietWaitS)
          : { waitedS: 0, otherCores: Number.NaN, quiet: false };
      const redisBefore = await readCounters(redisStats);
      const t0 = performance.now();
      const before = snapshot(measured, ctx.services);
      const result = await runNip46Load(clients, opts.durationS);
      const after = snapshot(measured, ctx.services);
      const redis = costBetween(redisBefore, await readCounters(redisStats), result.roundTrips, 1, {
        rate: idle,
        wallS: (performance.now() - t0) / 1000,
      });
      const cpu = cpuBetween(before, after, [farm], ourPids(measured, ctx.services), result.roundTrips);
      signed.push(...result.signed);
      runs.push({ run, quietWait, ...withoutSigned(result), cpu, redis });
      ctx.log(
        `  run ${run}: ${result.rtPerSec} round trips/s, p50 ${result.latencyMs.p50} ms, p95 ${result.latencyMs.p95} ms, p99 ${result.latencyMs.p99} ms, ` +
          `Redis ${redis.commandsPerRequest} commands and ${redis.cpuUsPerRequest} µs CPU per round trip (less idle ${redis.marginal?.commandsPerRequest} and ${redis.marginal?.cpuUsPerRequest}; ${redis.itemsPerJob} per job), ` +
          `errors ${result.errors.replied}+${result.errors.failed} ${JSON.stringify(result.errors.samples)}, cores ${JSON.stringify(cpu.cores)}`,
      );
    }

    redisStats.disconnect();
    const farmView = farmBreakdown(
      farm.name,
      metricsBefore,
      await fetchMetrics(farm.url!),
      (performance.now() - runsStart) / 1000,
      { door: 'nip46', method: 'request' },
    );
    ctx.log(`  farm view: ${JSON.stringify(farmView)}`);

    // Checked with nostr-tools (pure-JS noble), independent of the libsecp256k1 backend that signed.
    const allowed = new Set(signers.values());
    const verify = {
      checked: signed.length,
      valid: signed.filter((e) => referenceVerifyEvent(e as never)).length,
      rightSigner: signed.filter((e) => allowed.has(e.pubkey)).length,
    };
    ctx.log(`  verified ${verify.valid}/${verify.checked} signed events (${verify.rightSigner} by the client's user)`);

    const m = (f: (r: Nip46Run) => number) => median(runs.map(f));
    const cpuCores: Record<string, number> = {};
    for (const name of Object.keys(runs[0]?.cpu.cores ?? {}))
      if (name !== 'wrk')
        cpuCores[name] = round(
          m((r) => r.cpu.cores[name] ?? 0),
          2,
        );
    const med = {
      rtPerSec: round(m((r) => r.rtPerSec)),
      ...medianLatency(runs),
      errors: m((r) => r.errors.replied + r.errors.failed),
      cpuCores,
      farmMsPerRoundTrip: round(
        m((r) => r.cpu.farmMsPerRequest),
        3,
      ),
      redisCommandsPerRoundTrip: round(
        m((r) => r.redis.commandsPerRequest),
        2,
      ),
      redisCpuUsPerRoundTrip: round(
        m((r) => r.redis.cpuUsPerRequest),
        1,
      ),
      redisMarginalCommandsPerRoundTrip: round(
        m((r) => r.redis.marginal?.commandsPerRequest ?? Number.NaN),
        2,
      ),
      redisMarginalCpuUsPerRoundTrip: round(
        m((r) => r.redis.marginal?.cpuUsPerRequest ?? Number.NaN),
        1,
      ),
      redisItemsPerJob: round(
        m((r) => r.redis.itemsPerJob),
        2,
      ),
    };
    for (const c of clients) c.close();
    relayStats = await relay.stop();
    return {
      name: 'nip46',
      clients: clients.length,
      relay:
        'bench/nip46/bench-relay.ts in its own process: verifies id and signature (libsecp256k1), fans out, stores nothing',
      connectS,
      warmup: withoutSigned(warmup),
      runs,
      farmView,
      median: med,
      verify,
      relayStats,
      barMet:
        clients.length >= NIP46_BAR.clients &&
        med.rtPerSec >= NIP46_BAR.rtPerSec &&
        med.p99Ms <= NIP46_BAR.p99Ms &&
        med.errors === 0,
    };
  } finally {
    for (const c of clients) c.close();
    if (farm) {
      await farm.stop();
      ctx.live.delete(farm);
    }
    await relay.stop();
  }
}
