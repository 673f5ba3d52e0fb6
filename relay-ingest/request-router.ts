// From a relay's EVENT to a shard job and back to a published response:
// - checks size, shape, the bunker it is for, then the id and the signature (on the crypto pool when given
//   one, off the event loop); requests dated outside the accepted window (too old, or too far in the
//   future) are dropped before the signature is checked; drops are counted;
// - limits requests from client keys other than the bunker's bound client (unbound-client-limit.ts);
// - claims the event id in Redis (SET NX with a TTL that outlives the window), so one request seen on
//   several relays, or at several relay-ingest replicas, or again after a restart, becomes exactly one
//   job; copies seen here add their relay to the places the response goes;
// - hands the request to the shard pipeline (shared/farm/shard-ingress.ts) on the shard of the bunker's
//   USER, with this door's policy (nip46Policy below), and publishes each response event to the relays.
import type { RedisClient } from '../shared/redis.js';
import { LRUCache } from 'lru-cache';
import type { BunkerRoute } from '../database/queries/nip46.js';
import type { ItemResult, Nip46Item, ReplyMessage } from '../shared/farm/jobs.js';
import { ShardIngress, type DoorPolicy, type Refusal } from '../shared/farm/shard-ingress.js';
import type { Logger } from '../shared/logger.js';
import { metrics } from '../shared/metrics.js';
import { requestClaimKey } from '../shared/nip46/channels.js';
import { NIP46_KIND, bunkerPubkeyOf } from '../shared/nip46/protocol.js';
import { verifyEvent } from '../shared/nostr/event.js';
import type { NostrEvent } from '../shared/nostr/types.js';
import { shardOf, type ShardNames } from '../shared/shard.js';
import { ingestMetrics } from './metrics.js';
import { UnboundClientLimit, type UnboundVerdict } from './unbound-client-limit.js';

export interface RequestRouterOptions {
  /** Command connection (claims, admission, queues). */
  redis: RedisClient;
  /** The connection this instance's reply channel is subscribed on. */
  subscriber: RedisClient;
  names: ShardNames;
  keyPrefix: string;
  shardCount: number;
  queueLimit: number;
  /** The longest an admitted request should wait in its shard (ADMISSION_MAX_WAIT_MS). */
  admissionMaxWaitMs?: number;
  instanceId: string;
  logger: Logger;
  route(bunkerPubkey: string): BunkerRoute | undefined;
  /** Resolves with how many relays accepted the event; `traceId` goes into its log lines. */
  publish(event: NostrEvent, relays: Iterable<string>, traceId?: string): Promise<number>;
  /** Requests older than this are not answered (their client gave up). */
  maxRequestAgeSeconds: number;
  /**
   * Requests dated further ahead than this are not answered (clock skew is allowed for, a request
   * dated ahead to outlive its claim is not). With the age, bounds the claim TTL.
   */
  maxRequestFutureSeconds: number;
  /** Requests per minute from one client key other than the bound client, per bunker. */
  unboundPerClientPerMinute: number;
  /** Requests per minute to one bunker from all client keys other than its bound client. */
  unboundPerBunkerPerMinute: number;
  /** How long to wait for a worker's reply before reading the stored result (and again, while it runs). */
  replyTimeoutMs: number;
  /** Checks an event's id and signature; default: on this thread. */
  verify?: EventVerifier;
}

/** True when the event's id is its hash and its signature is valid. */
export type EventVerifier = (event: NostrEvent) => Promise<boolean>;

const verifyHere: EventVerifier = (event) => Promise.resolve(verifyEvent(event));

/** Beyond the window, how long a claim is kept, for clocks of replicas and relays that disagree. */
const CLAIM_MARGIN_SECONDS = 300;

interface PendingRequest {
  item: Nip46Item;
  route: BunkerRoute;
  /** Relays this process saw the request on. */
  seenOn: Set<string>;
  receivedAt: number;
}

export class RequestRouter {
  private readonly ingress: ShardIngress<PendingRequest>;
  /** Event ids this process has taken (or seen taken), with the relays they came from. */
  private readonly seen = new LRUCache<string, Set<string>>({ max: 100_000 });
  private readonly unboundLimit: UnboundClientLimit;
  private closed = false;
  /** False once draining: events are no longer taken, what was taken is still answered. */
  private accepting = true;
  private claiming = 0;
  private readonly publishing = new Set<Promise<unknown>>();
  private traceSeq = 0;

  constructor(private readonly opts: RequestRouterOptions) {
    this.unboundLimit = new UnboundClientLimit(opts.redis, {
      keyPrefix: opts.keyPrefix,
      perClient: opts.unboundPerClientPerMinute,
      perBunker: opts.unboundPerBunkerPerMinute,
    });
    this.ingress = new ShardIngress({
      redis: opts.redis,
      subscriber: opts.subscriber,
      names: opts.names,
      shardCount: opts.shardCount,
      queueLimit: opts.queueLimit,
      admissionMaxWaitMs: opts.admissionMaxWaitMs,
      instanceId: opts.instanceId,
      replyTimeoutMs: opts.replyTimeoutMs,
      logger: opts.logger,
      policy: this.policy(),
    });
  }

  /** Subscribes to this instance's reply channel; resolves once replies can arrive. */
  start(): Promise<void> {
    return this.ingress.start();
  }

  /** Requests queued or waiting for their response. */
  get waiting(): number {
    return this.ingress.waiting;
  }

  onEvent(relay: string, raw: unknown): void {
    if (this.closed || !this.accepting) return;
    const event = raw as NostrEvent;
    if (
      typeof event !== 'object' ||
      event === null ||
      event.kind !== NIP46_KIND ||
      typeof event.id !== 'string' ||
      !Array.isArray(event.tags)
    ) {
      return this.drop('malformed');
    }
    if (this.isKnownCopy(event.id, relay)) return this.drop('duplicate');
    const bunker = bunkerPubkeyOf(event);
    const route = bunker ? this.opts.route(bunker) : undefined;
    if (!bunker || !route) return this.drop('unknown_bunker');
    // The window is checked before the signature: a request dated outside it costs no verification.
    if (!Number.isSafeInteger(event.created_at)) return this.drop('malformed');
    const age = Math.floor(Date.now() / 1000) - event.created_at;
    if (age > this.opts.maxRequestAgeSeconds) return this.drop('stale');
    if (-age > this.opts.maxRequestFutureSeconds) return this.drop('future');
    this.claiming++;
    void this.take(relay, event, bunker, route).finally(() => this.claiming--);
  }

  /**
   * Verifies, then claims. An event counts as seen only once verified, so a forged copy carrying a real
   * request's id cannot shadow it; copies verified at the same time meet at the second `seen` check.
   */
  private async take(relay: string, event: NostrEvent, bunker: string, route: BunkerRoute): Promise<void> {
    let valid: boolean;
    try {
      valid = await (this.opts.verify ?? verifyHere)(event);
    } catch (err) {
      this.opts.logger.warn({ eventId: event.id, err: (err as Error).message }, 'verifying a nip46 request failed');
      valid = false;
    }
    if (!valid) return this.drop('forged');
    if (this.closed || !this.accepting) return;
    if (this.isKnownCopy(event.id, relay)) return this.drop('duplicate');
    const seenOn = new Set([relay]);
    this.seen.set(event.id, seenOn);
    metrics.nip46Requests.inc();
    if (event.pubkey !== route.clientPubkey && !(await this.withinUnboundLimit(event, bunker))) return;
    await this.claim(event, bunker, route, seenOn);
  }

  /** Counts a request from a client key that is not the bound client; false (dropped, counted) past a limit. */
  private async withinUnboundLimit(event: NostrEvent, bunker: string): Promise<boolean> {
    let verdict: UnboundVerdict;
    try {
      verdict = await this.unboundLimit.take(bunker, event.pubkey);
    } catch (err) {
      this.opts.logger.warn(
        { eventId: event.id, err: (err as Error).message },
        'counting an unbound nip46 request failed',
      );
      this.seen.delete(event.id);
      this.drop('redis_unavailable');
      return false;
    }
    if (verdict === 'ok') return true;
    this.drop('rate_limited');
    return false;
  }

  /** Stops taking events and waits, up to timeoutMs, until every request taken is answered and published. */
  async drain(timeoutMs: number): Promise<boolean> {
    this.accepting = false;
    const end = Date.now() + timeoutMs;
    for (;;) {
      this.ingress.flush();
      if (this.claiming === 0 && this.waiting === 0 && this.publishing.size === 0) return true;
      if (Date.now() >= end) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.ingress.close();
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.publishing.add(p);
    void p.finally(() => this.publishing.delete(p)).catch(() => undefined);
    return p;
  }

  /** True when the event was taken already (here or, seen here, elsewhere); this relay joins its reply's targets. */
  private isKnownCopy(eventId: string, relay: string): boolean {
    const copies = this.seen.get(eventId);
    copies?.add(relay);
    return copies !== undefined;
  }

  private drop(reason: string, count = 1): void {
    ingestMetrics.eventsDropped.inc({ reason }, count);
  }

  private async claim(event: NostrEvent, bunker: string, route: BunkerRoute, seenOn: Set<string>): Promise<void> {
    // A claim outlives every moment at which its request is still accepted (dated up to the future
    // bound ahead, answered until the age bound after that), so a request sent again, by a relay or
    // anyone, after a restart or once it left `seen`, cannot make a second job.
    const ttl = this.opts.maxRequestFutureSeconds + this.opts.maxRequestAgeSeconds + CLAIM_MARGIN_SECONDS;
    let won: boolean;
    try {
      won =
        (await this.opts.redis.set(
          requestClaimKey(this.opts.keyPrefix, event.id),
          this.opts.instanceId,
          'EX',
          ttl,
          'NX',
        )) === 'OK';
    } catch (err) {
      this.opts.logger.warn({ eventId: event.id, err: (err as Error).message }, 'claiming a nip46 request failed');
      this.seen.delete(event.id);
      return this.drop('redis_unavailable');
    }
    if (!won) return this.drop('duplicate');
    const traceId = `n46-${this.opts.instanceId}-${++this.traceSeq}`;
    const item: Nip46Item = { id: event.id, traceId, bunkerPubkey: bunker, event };
    this.ingress.submit(shardOf(route.userPubkey, this.opts.shardCount), {
      item,
      route,
      seenOn,
      receivedAt: Date.now(),
    });
  }

  /**
   * A request its user decided on (approval per request), sent through the pipeline again with its
   * approval: the worker uses the decision and the answer goes out like any other, to the bunker's relays
   * and `relays`. The claim was taken when it first came; the approval is taken once (by the caller).
   */
  submitDecided(event: NostrEvent, approvalId: string, relays: Iterable<string>): boolean {
    if (this.closed || !this.accepting) return false;
    const bunker = bunkerPubkeyOf(event);
    const route = bunker ? this.opts.route(bunker) : undefined;
    if (!bunker || !route) return false;
    const traceId = `n46-${this.opts.instanceId}-a${++this.traceSeq}`;
    const item: Nip46Item = { id: event.id, traceId, bunkerPubkey: bunker, event, approvalId };
    this.ingress.submit(shardOf(route.userPubkey, this.opts.shardCount), {
      item,
      route,
      seenOn: new Set(relays),
      receivedAt: Date.now(),
    });
    return true;
  }

  /**
   * This door's side of the shard pipeline. A request not taken (shard full, Redis unreachable, closing)
   * is dropped, counted, and its claim given back, so a copy arriving later (another relay, a resend)
   * can still be taken. A job not answered by the timeout is waited for again while it is queued or
   * running and its oldest request is still within the accepted age: the claim means no other job will
   * ever run these requests.
   */
  private policy(): DoorPolicy<PendingRequest> {
    return {
      door: 'nip46',
      // Claims are exclusive, so no other job can carry this first request: the id is unique, and a job
      // somehow made twice for it is refused by the queue (dedupe), so it runs once.
      // A request sent again after its approval is its own job (the first one's id may still be kept).
      jobId: (batch) => {
        const first = batch[0]!.item;
        return first.approvalId === undefined ? `n46.${first.id}` : `n46a.${first.approvalId}`;
      },
      dedupe: true,
      jobData: (_jobId, requests) => ({
        type: 'nip46',
        replyTo: this.opts.instanceId,
        items: requests.map((r) => r.item),
      }),
      results: (_jobId, reply) => {
        const results = (reply as Partial<ReplyMessage> | null)?.results;
        if (!Array.isArray(results)) throw new Error('reply without results');
        return results;
      },
      answer: (req, result, jobId) => this.answer(req, result, jobId),
      refuse: (requests, why) => this.refuse(requests, why),
      // A dropped request is lost for good (the relay will not send it again): each gets its own admission.
      holdAfterRefusal: false,
      lateJob: {
        kind: 'wait',
        while: (requests) =>
          Date.now() / 1000 - Math.min(...requests.map((r) => r.item.event.created_at)) <
          this.opts.maxRequestAgeSeconds,
      },
    };
  }

  private async refuse(requests: readonly PendingRequest[], why: Refusal): Promise<void> {
    if (why === 'shard overloaded') {
      metrics.nip46QueueDropped.inc(requests.length);
    } else if (why === 'queue unavailable') {
      this.drop('queue_unavailable', requests.length);
    }
    await Promise.allSettled(requests.map((r) => this.opts.redis.del(requestClaimKey(this.opts.keyPrefix, r.item.id))));
    for (const r of requests) this.seen.delete(r.item.id);
  }

  /** Publishes a request's response event; a request without one is counted. */
  private answer(req: PendingRequest, r: ItemResult, jobId: string): void {
    if (!r.ok) {
      ingestMetrics.noResponse.inc({ reason: r.status === 504 ? 'no_reply' : 'dropped' });
      return;
    }
    const event = r.result as NostrEvent;
    const relays = new Set([...req.seenOn, ...req.route.relays]);
    metrics.rpcDuration.observe({ door: 'nip46', method: r.method ?? 'other' }, (Date.now() - req.receivedAt) / 1000);
    const traceId = req.item.traceId;
    void this.track(this.opts.publish(event, relays, traceId)).then((accepted) => {
      if (accepted === 0)
        this.opts.logger.warn({ traceId, jobId, relays: [...relays] }, 'no relay accepted a nip46 response');
      else
        this.opts.logger.debug(
          { traceId, jobId, eventId: event.id, accepted, relays: relays.size },
          'nip46 response published',
        );
    });
  }
}
