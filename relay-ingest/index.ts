// The relay-ingest role: stays connected to the relays, listens for kind-24133 requests to every bunker
// Keyfarm holds (kept current as authorizations are created and revoked, without a restart), turns each
// request into exactly one shard job, and publishes the responses the workers sign.
import { randomBytes } from 'node:crypto';
import type { Db } from '../database/pool.js';
import type { Config } from '../shared/config.js';
import { parseEviction } from '../shared/evictions.js';
import type { Logger } from '../shared/logger.js';
import {
  listUndispatchedNip46Approvals,
  releaseNip46Approval,
  takeDecidedNip46Approval,
} from '../database/queries/approvals.js';
import {
  bunkerChannel,
  parseAnnouncement,
  parseApprovalDecided,
  type BunkerAnnouncement,
} from '../shared/nip46/channels.js';
import type { NostrEvent } from '../shared/nostr/types.js';
import { recordConnectResult } from '../shared/nip46/connect-result.js';
import { LISTENER_HEARTBEAT_MS, markListening, renewListenerPresence } from '../shared/nip46/listening.js';
import { normalizeRelayUrl } from '../shared/nostr/relay-url.js';
import { addReadinessCheck, probe, type CheckResult } from '../shared/readiness.js';
import { watchBroadcastLink } from '../shared/pubsub.js';
import { createRedis, isUp, shardNamesFor, type RedisTarget } from '../shared/redis.js';
import {
  RelayRefusedError,
  checkUserRelayUrl,
  publicOnlyLookup,
  userRelayPolicy,
  type Resolver,
} from '../shared/user-relay-policy.js';
import { BunkerDirectory } from './bunker-directory.js';
import { ingestMetrics } from './metrics.js';
import type { ConnectGuard, RelayTuning } from './relay-connection.js';
import { RelayPool } from './relay-pool.js';
import { RequestRouter, type EventVerifier } from './request-router.js';

export type RelayIngestConfig = Pick<
  Config,
  | 'KEY_PREFIX'
  | 'SHARD_COUNT'
  | 'QUEUE_LIMIT'
  | 'ADMISSION_MAX_WAIT_MS'
  | 'BUNKER_RELAYS'
  | 'RPC_TIMEOUT_MS'
  | 'USER_RELAYS_TOTAL'
  | 'USER_RELAYS_ALLOW_WS'
  | 'USER_RELAYS_ALLOW_PRIVATE'
  | 'USER_RELAYS_ALLOWLIST'
  | 'NIP46_UNBOUND_CLIENT_PER_MINUTE'
  | 'NIP46_UNBOUND_BUNKER_PER_MINUTE'
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
  /** How long a new bunker (or a nostrconnect response) waits for a relay's EOSE before giving up on it. */
  listenWaitMs: number;
}

export const DEFAULT_INGEST_TUNING: RelayIngestTuning = {
  relay: {},
  revokedGraceSeconds: 24 * 3600,
  reloadIntervalMs: 60_000,
  maxRequestAgeSeconds: 900,
  maxRequestFutureSeconds: 120,
  publishAttempts: 4,
  publishRetryDelayMs: 250,
  listenWaitMs: 10_000,
};

export interface StartRelayIngestOptions {
  config: RelayIngestConfig;
  logger: Logger;
  db: Db;
  redisUrl: RedisTarget;
  /** Unique per process; default ingest-<random>. */
  instanceId?: string;
  tuning?: Partial<RelayIngestTuning>;
  /** Checks received events' ids and signatures (the crypto pool); default: on the event loop. */
  verify?: EventVerifier;
  /** Resolves user relays' host names before each connect; default: the system's (tests stand in a DNS server). */
  userRelayResolver?: Resolver;
}

export interface RelayIngest {
  readonly instanceId: string;
  readonly pool: RelayPool;
  readonly directory: BunkerDirectory;
  /** [check, null when ok / reason, note]: at least one service relay connected (first), Redis answering. */
  readiness(): Promise<CheckResult[]>;
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
  const names = shardNamesFor(config.KEY_PREFIX, opts.redisUrl, config.SHARD_COUNT);
  const serviceRelays = [
    ...new Set(config.BUNKER_RELAYS.map(normalizeRelayUrl).filter((u): u is string => u !== undefined)),
  ];

  const redis = createRedis(opts.redisUrl);
  // No ready check (INFO) on the subscriber: sent after SUBSCRIBE it fails and the subscription is lost.
  const subscriber = createRedis(opts.redisUrl, { enableAutoPipelining: false, enableReadyCheck: false });
  redis.on('error', (err) => log.warn({ err: err.message }, 'relay-ingest redis error'));
  subscriber.on('error', (err) => log.warn({ err: err.message }, 'relay-ingest subscriber error'));

  const directory = new BunkerDirectory(opts.db, tuning.revokedGraceSeconds);
  await directory.reload();

  const userRelayGuard = guardOf(config, opts.userRelayResolver);
  let router: RequestRouter | undefined;
  const pool = new RelayPool({
    serviceRelays,
    logger: log,
    tuning: tuning.relay,
    maxExtraRelays: config.USER_RELAYS_TOTAL,
    userRelayGuard,
    publishAttempts: tuning.publishAttempts,
    publishRetryDelayMs: tuning.publishRetryDelayMs,
    onEvent: (relay, event) => router?.onEvent(relay, event),
    onOversized: () => ingestMetrics.eventsDropped.inc({ reason: 'oversized' }),
    onConnectedChange: () => heartbeat(),
  });
  router = new RequestRouter({
    redis,
    subscriber,
    names,
    keyPrefix: config.KEY_PREFIX,
    shardCount: config.SHARD_COUNT,
    queueLimit: config.QUEUE_LIMIT,
    admissionMaxWaitMs: config.ADMISSION_MAX_WAIT_MS,
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
  // Before the relays are listened to: a request taken earlier would find no pipeline to take it.
  await router.start();

  const rules = {
    allowed: (url: string) => userRelayGuard.check(url) === null,
    maxUserRelays: config.USER_RELAYS_TOTAL,
  };
  let lastLeftOut = '';
  let expiryTimer: NodeJS.Timeout | undefined;
  const sync = () => {
    const { plan, refused, overCap } = directory.plan(serviceRelays, rules);
    pool.sync(plan);
    ingestMetrics.bunkers.set(directory.size);
    const leftOut = `${refused.length}/${overCap.length}`;
    if (leftOut !== lastLeftOut && (refused.length || overCap.length)) {
      log.warn(
        { refused: refused.length, overCap: overCap.length, maxUserRelays: config.USER_RELAYS_TOTAL },
        'user relays left out of the relay plan',
      );
    }
    lastLeftOut = leftOut;
    // An expiring authorization's relays leave the plan when it expires, not at the next reload.
    clearTimeout(expiryTimer);
    const next = directory.nextExpiry(serviceRelays);
    if (next !== undefined) {
      expiryTimer = setTimeout(
        () => void update('expiry', async () => sync()),
        Math.min(next - Date.now() + 10, 2 ** 31 - 1),
      );
      expiryTimer.unref();
    }
  };
  sync();

  // Changes are applied one at a time, in the order they were announced.
  let updates: Promise<void> = Promise.resolve();
  const update = (what: string, fn: () => Promise<void>) => {
    updates = updates
      .then(fn)
      .catch((err: Error) => log.warn({ err: err.message, what }, 'updating the bunker list failed'));
    return updates;
  };
  const reload = () =>
    update('reload', async () => {
      await directory.reload();
      sync();
      await sweepDecided();
    });
  // Work that waits on the relays runs beside the update queue, so one slow relay holds up no other bunker.
  const background = new Set<Promise<void>>();
  const inBackground = (what: string, fn: () => Promise<void>) => {
    const p = fn()
      .catch((err: Error) => log.warn({ err: err.message, what }, 'nip46 background task failed'))
      .finally(() => background.delete(p));
    background.add(p);
  };

  // The api hands out a new bunker's URL once some relay-ingest marks it listened for (EOSE on a relay).
  const markWhenListening = (bunkerPubkey: string) =>
    inBackground('listening mark', async () => {
      if (await pool.waitListening(bunkerPubkey, tuning.listenWaitMs))
        await markListening(redis, config.KEY_PREFIX, bunkerPubkey);
    });

  const publishConnectResponse = (bunkerPubkey: string, publish: NonNullable<BunkerAnnouncement['publish']>) =>
    inBackground('nostrconnect response', async () => {
      const relays = publish.relays.map(normalizeRelayUrl).filter((u): u is string => u !== undefined && pool.has(u));
      // The app sends its next request as soon as it has the answer, on these relays: listen there first.
      await Promise.all(relays.map((u) => pool.waitListening(bunkerPubkey, tuning.listenWaitMs, [u])));
      const accepted = await pool.publish(publish.event, relays);
      log.info({ bunkerPubkey, relays: relays.length, accepted }, 'published a nostrconnect response');
      // For the page that created the link: whether the app could hear the answer.
      await recordConnectResult(redis, config.KEY_PREFIX, bunkerPubkey, { accepted, relays: publish.relays.length });
    });

  const onAnnouncement = (a: BunkerAnnouncement) =>
    update('announcement', async () => {
      const route = await directory.refresh(a.bunkerPubkey);
      sync();
      if (!route) return;
      markWhenListening(a.bunkerPubkey);
      if (a.publish) publishConnectResponse(a.bunkerPubkey, a.publish);
    });

  // A decided approval: the first replica to take it sends its request through the pipeline again.
  const onApprovalDecided = async (approvalId: string) => {
    try {
      const taken = await takeDecidedNip46Approval(opts.db, approvalId);
      if (!taken) return;
      const sent = router!.submitDecided(taken.event as NostrEvent, approvalId, serviceRelays);
      if (sent) return;
      // Draining, or this replica does not know the bunker: another relay-ingest (or a later sweep) sends it.
      log.warn({ bunkerPubkey: taken.bunkerPubkey }, 'a decided nip46 request could not be sent again here');
      await releaseNip46Approval(opts.db, approvalId);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'taking a decided approval failed');
    }
  };

  // Decisions whose announcement was lost (no relay-ingest subscribed then): taken with each reload.
  const sweepDecided = async () => {
    try {
      for (const id of await listUndispatchedNip46Approvals(opts.db)) await onApprovalDecided(id);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'reading decided approvals failed');
    }
  };

  const announceChannel = bunkerChannel(config.KEY_PREFIX);
  const evictChannel = names.evictChannel();
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === announceChannel) {
      const a = parseAnnouncement(message);
      if (a) void onAnnouncement(a);
      const decided = a ? undefined : parseApprovalDecided(message);
      if (decided) void onApprovalDecided(decided.approvalId);
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
  const unwatchLink = watchBroadcastLink(subscriber, (linked) => {
    if (linked && subscribedOnce) void reload();
  });
  await subscriber.subscribe(announceChannel, evictChannel);
  subscribedOnce = true;

  const reloadTimer = setInterval(() => void reload(), tuning.reloadIntervalMs);
  reloadTimer.unref();

  // While it can listen (a service relay connected; without any configured, a user relay), the api may
  // wait for this process's listening marks.
  function heartbeat() {
    const { connected, configured } = pool.serviceStatus();
    const canListen = configured > 0 ? connected > 0 : pool.connected().length > 0;
    if (!canListen || !isUp(redis)) return;
    renewListenerPresence(redis, config.KEY_PREFIX).catch((err: Error) =>
      log.debug({ err: err.message }, 'renewing the listener presence failed'),
    );
  }
  const heartbeatTimer = setInterval(heartbeat, LISTENER_HEARTBEAT_MS);
  heartbeatTimer.unref();
  heartbeat();

  // Only the service relays count: a user's relay is theirs, and keeps no process ready.
  const relaysCheck = (): CheckResult => {
    const { connected, configured } = pool.serviceStatus();
    if (configured === 0) return ['relays', 'no relays configured (BUNKER_RELAYS)'];
    if (connected === 0) return ['relays', `no relay connected (0/${configured})`];
    return ['relays', null, connected < configured ? `degraded: ${connected}/${configured} connected` : undefined];
  };
  const readiness = async (): Promise<CheckResult[]> => [
    relaysCheck(),
    isUp(redis) ? await probe('redis', () => redis.ping()) : ['redis', `not connected (${redis.status})`],
  ];
  // Beside the api (`all`), relays down leave HTTP signing working: the process stays ready and reports the
  // relays as degraded. No configured relay means the NIP-46 door is off.
  const removeCheck = addReadinessCheck('relays', async () => {
    const { connected, configured } = pool.serviceStatus();
    if (configured === 0 || connected === configured) return null;
    return { degraded: `degraded: ${connected}/${configured} connected` };
  });

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
        clearInterval(heartbeatTimer);
        clearTimeout(expiryTimer);
        removeCheck();
        // Requests already taken from the relays are answered before the relays are closed.
        if (drainMs > 0 && !(await router!.drain(drainMs)))
          log.warn({ drainMs }, 'nip46 requests still unanswered at shutdown');
        await router!.close();
        await pool.close();
        await updates;
        await Promise.allSettled([...background]);
        unwatchLink();
        subscriber.disconnect();
        await redis.quit().catch(() => redis.disconnect());
        log.info('relay-ingest stopped');
      })()),
  };
}

/** The check every connect to a user relay passes (service relays are trusted and pass none). */
function guardOf(config: RelayIngestConfig, resolve?: Resolver): ConnectGuard {
  const policy = userRelayPolicy(config);
  return {
    check(url) {
      try {
        checkUserRelayUrl(url, policy);
        return null;
      } catch (err) {
        if (err instanceof RelayRefusedError) return err.message;
        throw err;
      }
    },
    lookup: policy.allowPrivate ? undefined : publicOnlyLookup(resolve),
  };
}
