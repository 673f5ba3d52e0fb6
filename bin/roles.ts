// Starts the roles of one process over a prepared runtime; the CLI and in-process tests share it.
import { startApi, type RunningApi } from '../api/index.js';
import { isUndefinedTable } from '../database/pool.js';
import { KeyStore } from '../shared/custody/key-store.js';
import { loadPayloadSealer } from '../shared/farm/payload-key.js';
import { checkShardCount } from '../shared/farm/shard-count.js';
import { ActivityDrain, ActivityStream, activityStreamKey } from '../workers/activity-stream.js';
import { ActivityWriter } from '../workers/activity-writer.js';
import { closeRedis, createRedis } from '../shared/redis.js';
import { CoalescingCryptoRunner } from '../workers/crypto/coalescing-runner.js';
import { InlineCheapOpsRunner } from '../workers/crypto/inline-runner.js';
import { CryptoPool } from '../workers/crypto/pool.js';
import { localCurve } from '../workers/crypto/curve.js';
import { CryptoLane } from '../workers/crypto/lane.js';
import type { CryptoRunner } from '../workers/crypto/types.js';
import { startCryptoBackend } from '../workers/crypto/backend.js';
import { cryptoBackend } from '../shared/nostr/crypto-backend.js';
import { startWorkers } from '../workers/index.js';
import { PostgresKeyLoader } from '../workers/postgres-key-loader.js';
import { PostgresNip46Store } from '../workers/postgres-nip46-store.js';
import { PostgresApprovals } from '../workers/postgres-approvals.js';
import { startRelayIngest, type RelayIngest, type RelayIngestTuning } from '../relay-ingest/index.js';
import { startHealthServer } from './health-server.js';
import type { NostrEvent } from '../shared/nostr/types.js';
import { probe, shutdownCheck } from '../shared/readiness.js';
import { VERSION, fatal, openKeyManager, type Runtime } from './runtime.js';

export interface RoleSet {
  api?: boolean;
  workers?: boolean;
  /** true, or tuning for tests (faster reconnects...). */
  relayIngest?: boolean | Partial<RelayIngestTuning>;
}

export interface RunningRoles {
  api?: RunningApi;
  relayIngest?: RelayIngest;
  /**
   * Stops the roles, api first so no new work arrives: in-flight HTTP requests are answered, NIP-46
   * requests taken are answered, running jobs finish (each bounded by the SHUTDOWN_* settings); then the
   * crypto pool and the KeyManager close.
   */
  stop(): Promise<void>;
}

/**
 * Starts the roles; rejects, with nothing started, when the farm records a shard count other than this
 * process's SHARD_COUNT (shared/farm/shard-count.ts): every role routes by shard or owns shards.
 */
export async function startRoles(rt: Runtime, roles: RoleSet): Promise<RunningRoles> {
  await checkShardCount({
    redis: rt.redisUrl,
    prefix: rt.config.KEY_PREFIX,
    shardCount: rt.config.SHARD_COUNT,
    logger: rt.logger,
  });
  // Before anything signs: the pool threads take this process's backend.
  try {
    startCryptoBackend(rt.config.CRYPTO_BACKEND, rt.logger);
  } catch (err) {
    fatal((err as Error).message);
  }
  const keyManager = await openKeyManager(rt);
  // Every role opens the farm payload key: RPC content crosses Redis sealed under it (shared/farm/jobs.ts).
  const payloadSealer = await loadPayloadSealer(rt.db, keyManager).catch((err: Error) =>
    fatal(`payload key: ${err.message}${isUndefinedTable(err) ? ' (run keyfarm migrate)' : ''}`),
  );
  const stops: (() => Promise<void>)[] = [];
  // The process's crypto: the workers' jobs and relay-ingest's signature checks (inline-runner.ts). On the
  // native backend the event loop runs the ops and sends their curve work to the crypto lane (lane.ts); the
  // pool takes the WASM backend's ops and large texts. A turn's pool work is spread over every pool thread:
  // with few shards jobs are large, and one thread must not sign a whole turn while the others idle.
  const threads = rt.config.CRYPTO_THREADS;
  const crypto = roles.workers || roles.relayIngest ? startCrypto(rt, roles, threads) : undefined;
  if (roles.workers && crypto) {
    // Activity goes to a Redis stream before each answer leaves, and is drained into PostgreSQL by every
    // workers process (workers/activity-stream.ts); the in-memory writer takes it while Redis refuses.
    const fallback = new ActivityWriter(rt.db, rt.logger);
    fallback.start();
    const streamKey = activityStreamKey(rt.config.KEY_PREFIX);
    const appender = createRedis(rt.redisUrl);
    const drainer = createRedis(rt.redisUrl, { enableAutoPipelining: false });
    for (const conn of [appender, drainer])
      conn.on('error', (err: Error) => rt.logger.warn({ err: err.message }, 'activity redis error'));
    const activity = new ActivityStream(appender, streamKey, fallback, rt.logger);
    const workers = await startWorkers({
      config: rt.config,
      logger: rt.logger,
      redisUrl: rt.redisUrl,
      keyLoader: new PostgresKeyLoader(rt.db, new KeyStore(keyManager)),
      crypto,
      activity,
      sealer: payloadSealer,
      nip46Store: new PostgresNip46Store(rt.db),
      approvals: new PostgresApprovals(rt.db, payloadSealer, rt.config),
    });
    const drain = new ActivityDrain({
      db: rt.db,
      redis: drainer,
      key: streamKey,
      consumer: workers.memberId,
      claimIdleMs: rt.config.ACTIVITY_CLAIM_IDLE_MS,
      logger: rt.logger,
    });
    await drain.start();
    stops.push(async () => {
      await workers.stop(rt.config.SHUTDOWN_JOBS_TIMEOUT_MS);
      await drain.stop();
      await fallback.close();
      await Promise.all([closeRedis(appender), closeRedis(drainer)]);
    });
    // Alone, workers serve probes and metrics on METRICS_PORT (PORT is the api's, and several workers may share a host).
    if (!roles.api && !roles.relayIngest && rt.config.METRICS_PORT !== undefined) {
      const ready = async () => [
        await probe('postgres', () => rt.db.query('SELECT 1')),
        ...(await workers.readiness()),
        ...shutdownCheck(),
      ];
      const health = await startHealthServer({
        host: rt.config.HOST,
        port: rt.config.METRICS_PORT,
        version: VERSION,
        ready,
        metricsToken: rt.config.METRICS_TOKEN,
      });
      stops.unshift(() => health.close());
    }
  }
  let relayIngest: RelayIngest | undefined;
  if (roles.relayIngest) {
    const tuning = typeof roles.relayIngest === 'object' ? roles.relayIngest : undefined;
    const verify =
      crypto && ((event: NostrEvent) => crypto.run([{ op: 'verify_event', event }]).then(([r]) => r?.ok === true));
    const ingest = await startRelayIngest({
      config: rt.config,
      logger: rt.logger,
      db: rt.db,
      redisUrl: rt.redisUrl,
      tuning,
      verify,
    });
    relayIngest = ingest;
    stops.unshift(() => ingest.stop(rt.config.SHUTDOWN_JOBS_TIMEOUT_MS));
    // Alone, relay-ingest serves its own probes and metrics; beside the api, the api serves them.
    if (!roles.api) {
      const ready = async () => [
        await probe('postgres', () => rt.db.query('SELECT 1')),
        ...(await ingest.readiness()),
        ...shutdownCheck(),
      ];
      const health = await startHealthServer({
        host: rt.config.HOST,
        port: rt.config.PORT,
        version: VERSION,
        ready,
        metricsToken: rt.config.METRICS_TOKEN,
      });
      stops.unshift(() => health.close());
    }
  }
  let api: RunningApi | undefined;
  if (roles.api) {
    api = await startApi({
      config: rt.config,
      logger: rt.logger,
      db: rt.db,
      redisUrl: rt.redisUrl,
      keyManager,
      payloadSealer,
      version: VERSION,
    });
    stops.unshift(() => api!.close());
  }
  // Last: the roles before it may still be finishing work on the pool.
  if (crypto) stops.push(() => crypto.close());
  return {
    api,
    relayIngest,
    async stop() {
      for (const s of stops)
        await s().catch((err: Error) => rt.logger.error({ err: err.message }, 'error while stopping'));
      await keyManager.close();
    },
  };
}

/**
 * Crypto lane threads of a process: the setting, else one where the event loop also serves HTTP or relays
 * (their I/O must not wait behind curve work), else none. A workers-only loop has nothing to keep free,
 * and handing its curve work to a mostly idle thread costs two thread wake-ups a job, each a cross-CPU
 * wake on a VM: on two cores that made the split deployment slower than all-in-one (docs/BENCHMARKS.md,
 * "The split on two cores").
 */
export function cryptoLaneThreads(setting: number | undefined, roles: RoleSet): number {
  return setting ?? (roles.api || roles.relayIngest ? 1 : 0);
}

/** The crypto runner of a process; closing it stops its pool and its lane. */
function startCrypto(rt: Runtime, roles: RoleSet, threads: number): CryptoRunner {
  const pool = new CoalescingCryptoRunner(new CryptoPool({ threads }), { parallelism: threads });
  if (cryptoBackend().name !== 'native') return new InlineCheapOpsRunner(pool);
  const laneThreads = cryptoLaneThreads(rt.config.CRYPTO_LANE_THREADS, roles);
  if (laneThreads === 0) return new InlineCheapOpsRunner(pool, { curve: localCurve });
  const lane = new CryptoLane({
    threads: laneThreads,
    onThreadError: (err) => rt.logger.error({ err: err.message }, 'crypto lane thread stopped; its requests failed'),
  });
  const runner = new InlineCheapOpsRunner(pool, { curve: lane });
  return {
    run: (ops) => runner.run(ops),
    close: async () => {
      await runner.close();
      await lane.close();
    },
  };
}
