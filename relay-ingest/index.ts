// The relay-ingest role: stays connected to the relays, listens for kind-24133 requests to every bunker
// Keyfarm holds (kept current as authorizations are created and revoked, without a restart), turns each
// request into exactly one shard job, and publishes the responses the workers sign.
import { randomBytes } from 'node:crypto';
import type { Db } from '../database/pool.js';
import type { Config } from '../shared/config.js';
import { parseEviction } from '../shared/evictions.js';
import type { Logger } from '../shared/logger.js';
import { bunkerChannel, parseAnnouncement, type BunkerAnnouncement } from '../shared/nip46/channels.js';
import { addReadinessCheck, probe } from '../shared/readiness.js';
import { createRedis, isUp } from '../shared/redis.js';
import { ShardNames } from '../shared/shard.js';
import { BunkerDirectory } from './bunker-directory.js';
import { ingestMetrics } from './metrics.js';
import type { RelayTuning } from './relay-connection.js';
import { RelayPool } from './relay-pool.js';
import { RequestRouter, type EventVerifier } from './request-router.js';
import { normalizeRelayUrl } from './subscription-plan.js';

export type RelayIngestConfig = Pick<
  Config,
  'KEY_PREFIX' | 'SHARD_COUNT' | 'QUEUE_LIMIT' | 'BUNKER_RELAYS' | 'RPC_TIMEOUT_MS' | 'NIP46_UNBOUND_CLIENT_PER_MINUTE' | 'NIP46_UNBOUND_BUNKER_PER_MINUTE'
>;

export interface RelayIngestTuning {
  relay: Partial<RelayTuning>;
  /** Revoked or expired bunkers are still answered (with an error) this long. */
  revokedGraceSeconds: number;
  /** Full reload of the bunker list (catches anything a lost announcement missed). */
  reloadIntervalMs: number;
  /** Requests older than this are not answered. */
  maxRequestAgeSeconds: number;
  /** Requests dated further ahead than this are not answered. */
  maxRequestFutureSeconds: number;
  publishAttempts: number;
  publishRetryDelayMs: number;
  maxExtraRelays: number;
}

export const DEFAULT_INGEST_TUNING: RelayIngestTuning = {
  relay: {},
  revokedGraceSeconds: 24 * 3600,
  reloadIntervalMs: 60_000,
  maxRequestAgeSeconds: 900,
  maxRequestFutureSeconds: 120,
  publishAttempts: 4,
  publishRetryDelayMs: 250,
  maxExtraRelays: 64,
};

export interface StartRelayIngestOptions {
  config: RelayIngestConfig;
  logger: Logger;
  db: Db;
  redisUrl: string;
  /** Unique per process; default ingest-<random>. */
  instanceId?: string;
  tuning?: Partial<RelayIngestTuning>;
  /** Checks received events' ids and signatures (the crypto pool); default: on the event loop. */
  verify?: EventVerifier;
}

export interface RelayIngest {
  readonly instanceId: string;
  readonly pool: RelayPool;
  readonly directory: BunkerDirectory;
  /** [check, null when ok / reason]: at least one relay connected (first), Redis answering. */
  readiness(): Promise<[string, string | null][]>;
  /** Waits until the bunker list and subscriptions reflect every change announced so far. */
  settled(): Promise<void>;
  /** Stops taking requests, answers those taken (up to drainMs), closes the relays and connections. */
  stop(drainMs?: number): Promise<void>;
}

export async function startRelayIngest(opts: StartRelayIngestOptions): Promise<RelayIngest> {
  const { config } = opts;
  const tuning = { ...DEFAULT_INGEST_TUNING, ...opts.tuning };
  const instanceId = opts.instanceId ?? `ingest-${randomBytes(6).toString('hex')}`;
  const log = opts.logger.child({ ingest: instanceId });
  const names = new ShardNames(config.KEY_PREFIX);
  const serviceRelays = [...new Set(config.BUNKER_RELAYS.map(normalizeRelayUrl).filter((u): u is string => u !== undefined))];

  const redis = createRedis(opts.redisUrl);
  // No ready check (INFO) on the subscriber: sent after SUBSCRIBE it fails and the subscription is lost.
  const subscriber = createRedis(opts.redisUrl, { enableAutoPipelining: false, enableReadyCheck: false });
  redis.on('error', (err) => log.warn({ err: err.message }, 'relay-ingest redis error'));
  subscriber.on('error', (err) => log.warn({ err: err.message }, 'relay-ingest subscriber error'));

  const directory = new BunkerDirectory(opts.db, tuning.revokedGraceSeconds);
  await directory.reload();

  let router: RequestRouter | undefined;
  const pool = new RelayPool({
    serviceRelays,
    logger: log,
    tuning: tuning.relay,
    maxExtraRelays: tuning.maxExtraRelays,
    publishAttempts: tuning.publishAttempts,
    publishRetryDelayMs: tuning.publishRetryDelayMs,
    onEvent: (relay, event) => router?.onEvent(relay, event),
    onOversized: () => ingestMetrics.eventsDropped.inc({ reason: 'oversized' }),
  });
  router = new RequestRouter({
    redis,
    names,
    keyPrefix: config.KEY_PREFIX,
    shardCount: config.SHARD_COUNT,
    queueLimit: config.QUEUE_LIMIT,
    instanceId,
    logger: log,
    route: (pk) => directory.get(pk),
    publish: (event, relays, traceId) => pool.publish(event, relays, traceId),
    maxRequestAgeSeconds: tuning.maxRequestAgeSeconds,
    maxRequestFutureSeconds: tuning.maxRequestFutureSeconds,
    unboundPerClientPerMinute: config.NIP46_UNBOUND_CLIENT_PER_MINUTE,
    unboundPerBunkerPerMinute: config.NIP46_UNBOUND_BUNKER_PER_MINUTE,
    replyTimeoutMs: Math.max(config.RPC_TIMEOUT_MS * 2, 5000),
    verify: opts.verify,
  });

  const sync = () => {
    pool.sync(directory.plan(serviceRelays));
    ingestMetrics.bunkers.set(directory.size);
  };
  sync();

  // Changes are applied one at a time, in the order they were announced.
  let updates: Promise<void> = Promise.resolve();
  const update = (what: string, fn: () => Promise<void>) => {
    updates = updates.then(fn).catch((err: Error) => log.warn({ err: err.message, what }, 'updating the bunker list failed'));
    return updates;
  };
  const reload = () => update('reload', async () => {
    await directory.reload();
    sync();
  });
  const onAnnouncement = (a: BunkerAnnouncement) =>
    update('announcement', async () => {
      await directory.refresh(a.bunkerPubkey);
      sync();
      if (!a.publish) return;
      const relays = a.publish.relays.map(normalizeRelayUrl).filter((u): u is string => u !== undefined && pool.has(u));
      await pool.waitConnected(relays, 5000);
      const accepted = await pool.publish(a.publish.event, relays);
      log.info({ bunkerPubkey: a.bunkerPubkey, relays: relays.length, accepted }, 'published a nostrconnect response');
    });

  const replyChannel = names.replyChannel(instanceId);
  const announceChannel = bunkerChannel(config.KEY_PREFIX);
  const evictChannel = names.evictChannel();
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === replyChannel) return router!.onReply(message);
    if (channel === announceChannel) {
      const a = parseAnnouncement(message);
      if (a) void onAnnouncement(a);
      return;
    }
    if (channel === evictChannel) {
      const e = parseEviction(message);
      if (e?.type === 'all') void reload();
      else if (e?.type === 'authorization') {
        const pk = directory.pubkeyOfAuthorization(e.authorizationId);
        if (pk) void update('eviction', async () => void (await directory.refresh(pk), sync()));
      }
    }
  });
  let subscribedOnce = false;
  // After a lost link, announcements may have been missed: read the whole list again.
  subscriber.on('ready', () => {
    if (subscribedOnce) void reload();
  });
  await subscriber.subscribe(replyChannel, announceChannel, evictChannel);
  subscribedOnce = true;

  const reloadTimer = setInterval(() => void reload(), tuning.reloadIntervalMs);
  reloadTimer.unref();

  const readiness = async (): Promise<[string, string | null][]> => {
    const connected = pool.connected().length;
    const known = pool.known().length;
    return [
      ['relays', connected > 0 ? null : known === 0 ? 'no relays configured (BUNKER_RELAYS)' : `no relay connected (0/${known})`],
      isUp(redis) ? await probe('redis', () => redis.ping()) : ['redis', `not connected (${redis.status})`],
    ];
  };
  // Beside the api (`all`), no configured relay means the NIP-46 door is off, not that the process is unfit.
  const removeCheck = addReadinessCheck('relays', async () => (pool.known().length === 0 ? null : (await readiness())[0]![1]));

  log.info({ relays: serviceRelays, bunkers: directory.size }, 'relay-ingest started');

  let stopping: Promise<void> | undefined;
  return {
    instanceId,
    pool,
    directory,
    readiness,
    settled: () => updates,
    stop: (drainMs = 0) =>
      (stopping ??= (async () => {
        clearInterval(reloadTimer);
        removeCheck();
        // Requests already taken from the relays are answered before the relays are closed.
        if (drainMs > 0 && !(await router!.drain(drainMs))) log.warn({ drainMs }, 'nip46 requests still unanswered at shutdown');
        await router!.close();
        await pool.close();
        await updates;
        subscriber.disconnect();
        await redis.quit().catch(() => redis.disconnect());
        log.info('relay-ingest stopped');
      })()),
  };
}
