// The workers role: joins the shard membership, runs a queue consumer for each shard it owns, keeps the
// decrypted-key cache, and evicts from it the moment a revocation or key change is announced.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from '../shared/config.js';
import { parseEviction } from '../shared/evictions.js';
import { keepSeconds, ShardQueue } from '../shared/farm/shard-queue.js';
import type { PayloadSealer } from '../shared/farm/payload-seal.js';
import type { Logger } from '../shared/logger.js';
import { metrics } from '../shared/metrics.js';
import { watchShards } from '../shared/farm/shard-metrics.js';
import { probe, type CheckResult } from '../shared/readiness.js';
import { watchBroadcastLink } from '../shared/pubsub.js';
import { closeRedis, createRedis, isUp, shardNamesFor, type RedisTarget } from '../shared/redis.js';
import type { ActivitySink } from './activity.js';
import { CachedNip46Store } from './nip46-authorization-cache.js';
import type { CryptoRunner } from './crypto/types.js';
import { KeyCache } from './key-cache.js';
import { KeyPrefetcher } from './key-prefetch.js';
import type { KeyLoader } from './key-loader.js';
import { createNip46Processor, type Nip46Store } from './nip46-processor.js';
import type { Nip46Approvals } from './postgres-approvals.js';
import { createRpcProcessor } from './rpc-processor.js';
import { ShardLeases } from './shard-leases.js';
import { ShardWorker } from './shard-worker.js';

export type WorkersConfig = Pick<
  Config,
  | 'KEY_PREFIX'
  | 'SHARD_COUNT'
  | 'QUEUE_LIMIT'
  | 'CACHE_MAX_BYTES'
  | 'LEASE_TTL_MS'
  | 'JOB_LOCK_MS'
  | 'JOB_CONCURRENCY'
  | 'KEY_PREFETCH_MAX_INFLIGHT'
> &
  Partial<Pick<Config, 'RPC_TIMEOUT_MS'>>;

/**
 * How long a finished job's record is kept: past the longest reply timeout of an ingress (relay-ingest's,
 * twice RPC_TIMEOUT_MS), so its fallback read finds it.
 */
function finishedKeepSeconds(rpcTimeoutMs = 10_000): number {
  return keepSeconds(Math.max(rpcTimeoutMs * 2, 5000));
}

export interface StartWorkersOptions {
  config: WorkersConfig;
  logger: Logger;
  keyLoader: KeyLoader;
  crypto: CryptoRunner;
  activity: ActivitySink;
  /** Opens RPC jobs' calls and seals their results: the farm payload key (loadPayloadSealer). */
  sealer: PayloadSealer;
  /** The authorizations table for NIP-46 jobs; without it this process runs no NIP-46 jobs. */
  nip46Store?: Nip46Store;
  /** Approval per request for NIP-46 (policies with `ask`); without it such requests are refused. */
  approvals?: Nip46Approvals;
  redisUrl: RedisTarget;
  /** Unique per process; default host:pid:random. */
  memberId?: string;
  /** How often owned shards' admission counts are rebuilt; default 30 s. */
  reconcileIntervalMs?: number;
  /** Stalled-job check period; default 1 s. */
  stalledIntervalMs?: number;
}

export interface Workers {
  readonly memberId: string;
  readonly cache: KeyCache;
  readonly leases: ShardLeases;
  ownedShards(): number[];
  /** [check, null when ok / reason]: Redis answering this process's commands. */
  readiness(): Promise<CheckResult[]>;
  /**
   * Closes every shard consumer (running jobs finish, for up to jobsTimeoutMs if given), gives the leases
   * back, leaves the membership.
   */
  stop(jobsTimeoutMs?: number): Promise<void>;
}

export async function startWorkers(opts: StartWorkersOptions): Promise<Workers> {
  const { config, logger } = opts;
  const names = shardNamesFor(config.KEY_PREFIX, opts.redisUrl, config.SHARD_COUNT);
  const memberId = opts.memberId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  const log = logger.child({ member: memberId });

  const commands = createRedis(opts.redisUrl);
  const subscriber = createRedis(opts.redisUrl, { enableAutoPipelining: false });
  for (const [name, conn] of [
    ['commands', commands],
    ['subscriber', subscriber],
  ] as const) {
    conn.on('error', (err: Error) => log.warn({ connection: name, err: err.message }, 'workers redis error'));
  }

  const cache = new KeyCache(config.CACHE_MAX_BYTES);
  const queue = new ShardQueue(commands, names, { limit: config.QUEUE_LIMIT });
  const deps = {
    cache,
    keyLoader: opts.keyLoader,
    crypto: opts.crypto,
    activity: opts.activity,
    publisher: commands,
    names,
    logger: log,
  };
  const processor = createRpcProcessor({ ...deps, sealer: opts.sealer });
  const nip46Store = opts.nip46Store ? new CachedNip46Store(opts.nip46Store) : undefined;
  const nip46Processor = nip46Store
    ? createNip46Processor({ ...deps, store: nip46Store, approvals: opts.approvals })
    : undefined;

  const running = new Map<number, ShardWorker>();
  const prefetcher = new KeyPrefetcher({
    cache,
    keyLoader: opts.keyLoader,
    shardCount: config.SHARD_COUNT,
    owns: (shard) => running.has(shard),
    maxInFlight: config.KEY_PREFETCH_MAX_INFLIGHT,
    logger: log,
  });
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === names.keyPrefetchChannel()) return void prefetcher.hint(message);
    const e = parseEviction(message);
    if (e?.type === 'key' && typeof e.keyId === 'string') cache.evictKey(e.keyId);
    else if (e?.type === 'authorization' && typeof e.authorizationId === 'string') nip46Store?.evict(e.authorizationId);
    else if (e?.type === 'all') {
      cache.clear();
      nip46Store?.clear();
    }
  });
  await subscriber.subscribe(names.evictChannel());
  if (config.KEY_PREFETCH_MAX_INFLIGHT > 0) await subscriber.subscribe(names.keyPrefetchChannel());
  // Announcements made while the subscription is down are lost: cache nothing meanwhile, and forget
  // whatever they might have named both when it drops and when it is back.
  const unwatchLink = watchBroadcastLink(subscriber, (linked) => nip46Store?.setLinked(linked));

  // Settles SHUTDOWN_JOBS_TIMEOUT_MS after stop(): no shard consumer closing (for the stop, or a hand-over
  // still running then) waits for its running jobs any longer.
  let jobsGraceOver!: () => void;
  const jobsGraceExpired = new Promise<void>((resolve) => (jobsGraceOver = resolve));
  const concurrency = config.JOB_CONCURRENCY;
  const reportOwned = () => metrics.shardsOwned.set(running.size);

  const reconcile = async (shard: number) => {
    try {
      await queue.reconcile(shard);
    } catch (err) {
      log.warn({ shard, err: (err as Error).message }, 'reconciling the admission count failed');
    }
  };

  // Depth, oldest-job age and owner of every shard are read at scrape time.
  const unwatchShards = watchShards(commands, names, config.SHARD_COUNT);

  const leases = new ShardLeases({
    redis: commands,
    names,
    shardCount: config.SHARD_COUNT,
    memberId,
    ttlMs: config.LEASE_TTL_MS,
    logger: log,
    onAcquire: async (shard) => {
      await reconcile(shard);
      // Each owned shard's blocking reads have a connection of their own.
      const reader = createRedis(opts.redisUrl, { enableAutoPipelining: false, maxRetriesPerRequest: null });
      reader.on('error', (err: Error) =>
        log.warn({ connection: 'reader', shard, err: err.message }, 'workers redis error'),
      );
      running.set(
        shard,
        new ShardWorker({
          shard,
          names,
          consumer: memberId,
          reader,
          commands,
          activity: opts.activity,
          queue,
          processor,
          nip46Processor,
          logger: log,
          concurrency,
          lockDurationMs: config.JOB_LOCK_MS,
          stalledIntervalMs: opts.stalledIntervalMs ?? 1000,
          maxStalledCount: 3,
          keepSeconds: finishedKeepSeconds(config.RPC_TIMEOUT_MS),
        }),
      );
      reportOwned();
    },
    onRelease: async (shard, reason) => {
      const worker = running.get(shard);
      running.delete(shard);
      reportOwned();
      // A lease lost (its Redis node failed over, or this process stalled) is not waited on: jobs stuck on
      // a dead node would hold the shard back; the next owner claims and runs them again.
      await worker?.close(jobsGraceExpired, { force: reason === 'lost' });
    },
  });
  await leases.start();

  const reconcileTimer = setInterval(() => {
    for (const shard of running.keys()) void reconcile(shard);
  }, opts.reconcileIntervalMs ?? 30_000);
  reconcileTimer.unref();

  log.info({ owned: leases.owned(), members: leases.members().length }, 'workers started');

  let stopping: Promise<void> | undefined;
  return {
    memberId,
    cache,
    leases,
    ownedShards: () => leases.owned(),
    readiness: async () => [
      isUp(commands) ? await probe('redis', () => commands.ping()) : ['redis', `not connected (${commands.status})`],
    ],
    stop: (jobsTimeoutMs?: number) =>
      (stopping ??= (async () => {
        if (jobsTimeoutMs !== undefined) setTimeout(jobsGraceOver, jobsTimeoutMs).unref();
        clearInterval(reconcileTimer);
        unwatchShards();
        unwatchLink();
        await leases.stop({ release: true });
        await Promise.allSettled([...running.values()].map((w) => w.close(jobsGraceExpired)));
        running.clear();
        reportOwned();
        cache.clear();
        await Promise.all([closeRedis(subscriber), closeRedis(commands)]);
        log.info('workers stopped');
      })()),
  };
}
