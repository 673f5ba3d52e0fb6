// `node dist/bench/rpc-route-cost.js [--duration 5] [--rounds 5]`: the api's own CPU and allocation
// per HTTP sign_event, with nothing else in the process: the real Fastify app (every hook, the route, its
// schemas, the sealing of each call into a job and the opening of its reply), loaded by wrk (its own process) at
// 64 connections, with the farm's side stubbed: the token's authorization is served from memory and each job
// is answered by sealing a canned signed event per call (that half timed and left out). Redis and PostgreSQL are not reached (the RPC
// route asks neither while the token is cached and no policy counts uses). Far less noisy than a whole farm
// on a shared machine, so changes to the api's request path can be compared run against run.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { Session } from 'node:inspector/promises';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { buildApi } from '../api/server.js';
import type { ApiContext } from '../api/context.js';
import type { ActingAuthorization } from '../database/queries/authorizations.js';
import { parseConfig } from '../shared/config.js';
import type { ItemResult, RpcItem, SealedReplyMessage } from '../shared/farm/jobs.js';
import { PayloadSealer } from '../shared/farm/payload-seal.js';
import { openRpcJob, openReply, sealReply, sealRpcJob } from '../shared/farm/rpc-sealing.js';
import { createLogger } from '../shared/logger.js';
import { shardNamesFor } from '../shared/redis.js';
import { runWrk, writeSignEventScript } from './wrk-load.js';

function parseArgs(argv: string[]) {
  const o = { duration: 5, rounds: 5, connections: 64 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], Number(argv[i + 1])];
    if (flag === '--duration') o.duration = value;
    else if (flag === '--rounds') o.rounds = value;
    else if (flag === '--connections') o.connections = value;
    else throw new Error(`unknown option ${flag}`);
  }
  return o;
}

const PUBKEY = randomBytes(32).toString('hex');
const TOKEN = `kfa_${randomBytes(32).toString('base64url')}`;

/** The farm's side of a job, in process: seal the calls as the api does, open them as a worker does, answer. */
function stubRpc(sealer: PayloadSealer) {
  let jobs = 0;
  const pending: { item: RpcItem; resolve: (r: ItemResult) => void }[] = [];
  const flush = () => {
    const batch = pending.splice(0);
    const jobId = `bench-${++jobs}`;
    const data = sealRpcJob(
      sealer,
      jobId,
      'api-bench',
      'http',
      batch.map((b) => b.item),
    );
    // The worker's half (open the calls, seal the results) is timed apart and taken out of the api's CPU.
    const workerStart = performance.now();
    const results: ItemResult[] = openRpcJob(sealer, jobId, data).map((item) => ({
      id: item.id,
      ok: true,
      result: {
        ...(item.call as { event: object }).event,
        pubkey: PUBKEY,
        id: randomBytes(32).toString('hex'),
        sig: randomBytes(64).toString('hex'),
      },
    }));
    const reply: SealedReplyMessage = sealReply(sealer, jobId, results);
    stub.workerMs += performance.now() - workerStart;
    const opened = openReply(sealer, reply);
    for (const [i, b] of batch.entries()) b.resolve(opened[i]!);
  };
  const stub = {
    calls: 0,
    /** Time spent on the worker's half of the jobs. */
    workerMs: 0,
    holdsAny: () => false,
    refusingFor: () => 0,
    call(_shard: number, item: RpcItem): Promise<ItemResult> {
      this.calls++;
      return new Promise((resolve) => {
        if (pending.push({ item, resolve }) === 1) setImmediate(flush);
      });
    },
  };
  return stub;
}

interface SamplingNode {
  selfSize: number;
  children: SamplingNode[];
}

const totalSize = (node: SamplingNode): number =>
  node.children.reduce((sum, child) => sum + totalSize(child), node.selfSize);

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const config = parseConfig({ LOG_LEVEL: 'info' });
  const logger = createLogger({ level: 'info', role: 'bench' });
  const sealer = new PayloadSealer(randomBytes(32));
  const acting: ActingAuthorization = {
    id: '00000000-0000-4000-8000-000000000001',
    userId: '00000000-0000-4000-8000-000000000002',
    userPubkey: PUBKEY,
    userKeyId: '00000000-0000-4000-8000-000000000003',
    policySlug: 'full',
    permissions: { allowed_kinds: 'all', encrypt: true, decrypt: true },
    grantedKinds: [],
    revokedAt: null,
    expiresAt: null,
    tokenRevoked: false,
  };
  const rpc = stubRpc(sealer);
  const ctx = {
    config,
    logger,
    sealer,
    version: 'bench',
    names: shardNamesFor(config.KEY_PREFIX, 'redis://127.0.0.1:1', config.SHARD_COUNT),
    rpc,
    acting: { get: async () => acting, peek: () => acting },
    // Only the rate-limit store's registration touches it: the RPC route has no request limit.
    redis: { status: 'ready', defineCommand() {}, keyfarmRequestLimit: async () => [1, 60_000] },
    mailer: { outbox: undefined },
  } as unknown as ApiContext;
  const app = await buildApi(ctx);
  const url = new URL(await app.listen({ port: 0, host: '127.0.0.1' }));

  const dir = mkdtempSync(path.join(tmpdir(), 'keyfarm-route-cost-'));
  const tokens = path.join(dir, 'tokens.txt');
  const script = path.join(dir, 'load.lua');
  writeFileSync(tokens, `${TOKEN}\n`);
  writeSignEventScript(script, tokens);
  const wrk = (durationS: number) =>
    runWrk({
      url: url.origin,
      scriptFile: script,
      connections: args.connections,
      threads: 1,
      durationS,
      outputFile: path.join(dir, 'wrk.txt'),
    });

  let gcMs = 0;
  let gcs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcMs += e.duration;
      gcs++;
    }
  });
  gc.observe({ entryTypes: ['gc'] });
  await wrk(3); // warm-up: JIT, pools
  const perRound: number[] = [];
  for (let r = 0; r < args.rounds; r++) {
    const [cpu0, gc0, gcs0, calls0, worker0] = [process.cpuUsage(), gcMs, gcs, rpc.calls, rpc.workerMs];
    const result = await wrk(args.duration);
    const cpu = process.cpuUsage(cpu0);
    const answered = rpc.calls - calls0;
    if (result.non2xx > 0) throw new Error(`${result.non2xx} answers were not 2xx`);
    const us = (cpu.user + cpu.system - (rpc.workerMs - worker0) * 1000) / answered;
    perRound.push(us);
    console.log(
      `round ${r + 1}: ${us.toFixed(1)} µs of api CPU per request, ${result.rps} req/s, p99 ${result.latencyMs.p99} ms, GC ${(((gcMs - gc0) * 1000) / answered).toFixed(1)} µs per request over ${gcs - gcs0} pauses, load ${loadavg()[0]!.toFixed(2)}`,
    );
  }
  // One more round under V8's sampling heap profiler, counting what the collector freed too: the bytes
  // allocated per request, which, unlike CPU time, other processes on the machine do not change.
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: 4096,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  } as never);
  const calls0 = rpc.calls;
  await wrk(args.duration);
  const { profile } = (await session.post('HeapProfiler.stopSampling')) as {
    profile: { head: SamplingNode };
  };
  session.disconnect();
  const allocated = totalSize(profile.head);
  console.log(`allocated: ${(allocated / (rpc.calls - calls0) / 1024).toFixed(1)} KiB per request`);
  perRound.sort((a, b) => a - b);
  console.log(
    `median ${perRound[Math.floor(perRound.length / 2)]!.toFixed(1)} µs, lowest ${perRound[0]!.toFixed(1)} µs of api CPU per request`,
  );
  gc.disconnect();
  await app.close();
  rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
