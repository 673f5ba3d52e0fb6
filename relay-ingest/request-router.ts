// From a relay's EVENT to a shard job and back to a published response:
// - checks size, shape, the bunker it is for, then the id and the signature (on the crypto pool when given
//   one, off the event loop); requests dated outside the accepted window (too old, or too far in the
//   future) are dropped before the signature is checked; drops are counted;
// - limits requests from client keys other than the bunker's bound client (unbound-client-limit.ts);
// - claims the event id in Redis (SET NX with a TTL that outlives the window), so one request seen on
//   several relays, or at several relay-ingest replicas, or again after a restart, becomes exactly one
//   job; copies seen here add their relay to the places the response goes;
// - routes to the shard of the bunker's USER and batches what arrives in one event-loop turn into one
//   job (jobId from the first request's event id), after admission: a full shard drops and counts;
// - takes the worker's reply on this instance's reply channel (or, if that message is lost, the job's
//   stored return value) and publishes each response event to the relays.
import { Job } from 'bullmq';
import type { RedisClient } from '../shared/redis.js';
import { LRUCache } from 'lru-cache';
import type { BunkerRoute } from '../database/queries/nip46.js';
import { Admission } from '../shared/farm/admission.js';
import { ShardQueues } from '../shared/farm/shard-queues.js';
import type { ItemResult, Nip46Item, Nip46JobData, ReplyMessage } from '../shared/farm/jobs.js';
import { MicroBatcher } from '../shared/farm/micro-batcher.js';
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
  names: ShardNames;
  keyPrefix: string;
  shardCount: number;
  queueLimit: number;
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
  /** How long to wait for a worker's reply before reading the stored result. */
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

interface InFlightJob {
  shard: number;
  requests: PendingRequest[];
  timer: NodeJS.Timeout;
  /** Lets the shard's next batch go (group commit). */
  answered(): void;
}

export class RequestRouter {
  private readonly batcher: MicroBatcher<PendingRequest>;
  private readonly queues: ShardQueues;
  private readonly inFlight = new Map<string, InFlightJob>();
  /** Event ids this process has taken (or seen taken), with the relays they came from. */
  private readonly seen = new LRUCache<string, Set<string>>({ max: 100_000 });
  private readonly admission: Admission;
  private readonly unboundLimit: UnboundClientLimit;
  private closed = false;
  /** False once draining: events are no longer taken, what was taken is still answered. */
  private accepting = true;
  private claiming = 0;
  private readonly publishing = new Set<Promise<unknown>>();
  private traceSeq = 0;

  constructor(private readonly opts: RequestRouterOptions) {
    this.admission = new Admission(opts.redis, opts.names, { limit: opts.queueLimit });
    this.unboundLimit = new UnboundClientLimit(opts.redis, {
      keyPrefix: opts.keyPrefix,
      perClient: opts.unboundPerClientPerMinute,
      perBunker: opts.unboundPerBunkerPerMinute,
    });
    this.queues = new ShardQueues(opts.redis, opts.names, (err, shard) => opts.logger.warn({ err: err.message, shard }, 'nip46 queue error'));
    // Group commit, as for HTTP calls: while a shard has a job out, its next requests gather into one job.
    this.batcher = new MicroBatcher((shard, reqs) => this.send(shard, reqs), { maxInFlight: 1, holdMaxMs: 250 });
  }

  /** Requests queued or waiting for their response. */
  get waiting(): number {
    let n = this.batcher.pending;
    for (const j of this.inFlight.values()) n += j.requests.length;
    return n;
  }

  onEvent(relay: string, raw: unknown): void {
    if (this.closed || !this.accepting) return;
    const event = raw as NostrEvent;
    if (typeof event !== 'object' || event === null || event.kind !== NIP46_KIND || typeof event.id !== 'string' || !Array.isArray(event.tags)) {
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
      this.opts.logger.warn({ eventId: event.id, err: (err as Error).message }, 'counting an unbound nip46 request failed');
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
      this.batcher.flushAll();
      if (this.claiming === 0 && this.waiting === 0 && this.publishing.size === 0) return true;
      if (Date.now() >= end) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.batcher.flushAll();
    for (const job of this.inFlight.values()) {
      clearTimeout(job.timer);
      job.answered();
    }
    this.inFlight.clear();
    await this.queues.close();
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

  private drop(reason: string): void {
    ingestMetrics.eventsDropped.inc({ reason });
  }

  private async claim(event: NostrEvent, bunker: string, route: BunkerRoute, seenOn: Set<string>): Promise<void> {
    // A claim outlives every moment at which its request is still accepted (dated up to the future
    // bound ahead, answered until the age bound after that), so a request sent again, by a relay or
    // anyone, after a restart or once it left `seen`, cannot make a second job.
    const ttl = this.opts.maxRequestFutureSeconds + this.opts.maxRequestAgeSeconds + CLAIM_MARGIN_SECONDS;
    let won: boolean;
    try {
      won = (await this.opts.redis.set(requestClaimKey(this.opts.keyPrefix, event.id), this.opts.instanceId, 'EX', ttl, 'NX')) === 'OK';
    } catch (err) {
      this.opts.logger.warn({ eventId: event.id, err: (err as Error).message }, 'claiming a nip46 request failed');
      this.seen.delete(event.id);
      return this.drop('redis_unavailable');
    }
    if (!won) return this.drop('duplicate');
    const traceId = `n46-${this.opts.instanceId}-${++this.traceSeq}`;
    const item: Nip46Item = { id: event.id, traceId, bunkerPubkey: bunker, event };
    this.batcher.add(shardOf(route.userPubkey, this.opts.shardCount), { item, route, seenOn, receivedAt: Date.now() });
  }

  private async send(shard: number, batch: PendingRequest[]): Promise<void> {
    if (this.closed) return;
    // Claims are exclusive, so no other job can carry this first request: the id is unique, and a job
    // somehow made twice for it is one BullMQ job.
    const jobId = `n46.${batch[0]!.item.id}`;
    const unclaim = (requests: PendingRequest[]) =>
      Promise.allSettled(requests.map((r) => this.opts.redis.del(requestClaimKey(this.opts.keyPrefix, r.item.id)))).then(() => {
        for (const r of requests) this.seen.delete(r.item.id);
      });
    let admitted: number;
    try {
      admitted = await this.admission.admit(shard, jobId, batch.length);
    } catch (err) {
      this.opts.logger.warn({ shard, jobId, err: (err as Error).message }, 'nip46 admission failed');
      await unclaim(batch);
      return this.drop('redis_unavailable');
    }
    // The shard had room for the first `admitted` requests: they make the job, the rest are dropped.
    const requests = batch.slice(0, admitted);
    const dropped = batch.length - admitted;
    if (dropped > 0) {
      metrics.nip46QueueDropped.inc(dropped);
      metrics.backpressureRejected.inc({ door: 'nip46' }, dropped);
      this.opts.logger.warn({ shard, requests: dropped }, 'shard full: nip46 requests dropped');
    }
    if (requests.length === 0) return;
    const timer = setTimeout(() => void this.timeOut(jobId), this.opts.replyTimeoutMs);
    let answered!: () => void;
    const answer = new Promise<void>((resolve) => (answered = resolve));
    const job: InFlightJob = { shard, requests, timer, answered };
    this.inFlight.set(jobId, job);
    const data: Nip46JobData = { type: 'nip46', replyTo: this.opts.instanceId, items: requests.map((r) => r.item) };
    const keep = { age: Math.ceil(this.opts.replyTimeoutMs / 1000) + 60 };
    try {
      await this.queues.get(shard).add('nip46', data, { jobId, attempts: 3, removeOnComplete: keep, removeOnFail: keep });
      if (this.opts.logger.isLevelEnabled('debug')) {
        for (const r of requests) this.opts.logger.debug({ traceId: r.item.traceId, eventId: r.item.id, shard, jobId }, 'nip46 request queued');
      }
    } catch (err) {
      this.opts.logger.warn({ shard, jobId, err: (err as Error).message }, 'adding a nip46 job failed');
      clearTimeout(timer);
      this.inFlight.delete(jobId);
      await this.admission.release(shard, jobId).catch(() => undefined);
      await unclaim(requests);
      this.drop('queue_unavailable');
      return;
    }
    await answer;
  }

  /** A message on this instance's reply channel (names.replyChannel(instanceId)). */
  onReply(message: string): void {
    let reply: ReplyMessage;
    try {
      reply = JSON.parse(message) as ReplyMessage;
    } catch {
      return;
    }
    const job = this.inFlight.get(reply.jobId);
    if (!job || !Array.isArray(reply.results)) return;
    this.finish(reply.jobId, job, reply.results);
  }

  private async timeOut(jobId: string): Promise<void> {
    const job = this.inFlight.get(jobId);
    if (!job) return;
    let stored: ItemResult[] = [];
    // A job taken is answered even when its worker comes late (restarting, Redis down a while): while it
    // is still queued or running, or Redis cannot be read, keep waiting as long as its requests are fresh.
    let pending = false;
    try {
      const j = await Job.fromId<Nip46JobData, ReplyMessage>(this.queues.get(job.shard), jobId);
      if (j?.finishedOn && Array.isArray(j.returnvalue?.results)) stored = j.returnvalue.results;
      else pending = j !== undefined && !j.finishedOn;
    } catch (err) {
      pending = true;
      this.opts.logger.warn({ jobId, err: (err as Error).message }, 'reading a nip46 job result failed');
    }
    if (this.inFlight.get(jobId) !== job) return;
    const oldest = Math.min(...job.requests.map((r) => r.item.event.created_at));
    if (pending && !this.closed && Date.now() / 1000 - oldest < this.opts.maxRequestAgeSeconds) {
      this.opts.logger.info({ jobId, shard: job.shard }, 'nip46 job not answered yet; still waiting');
      job.timer = setTimeout(() => void this.timeOut(jobId), this.opts.replyTimeoutMs);
      return;
    }
    this.finish(jobId, job, stored);
  }

  private finish(jobId: string, job: InFlightJob, results: ItemResult[]): void {
    clearTimeout(job.timer);
    this.inFlight.delete(jobId);
    job.answered();
    const byId = new Map(results.map((r) => [r.id, r]));
    for (const req of job.requests) {
      const r = byId.get(req.item.id);
      if (!r) {
        ingestMetrics.noResponse.inc({ reason: 'no_reply' });
        this.opts.logger.warn({ traceId: req.item.traceId, jobId }, 'no nip46 response in time');
        continue;
      }
      if (!r.ok) {
        ingestMetrics.noResponse.inc({ reason: 'dropped' });
        continue;
      }
      const event = r.result as NostrEvent;
      const relays = new Set([...req.seenOn, ...req.route.relays]);
      metrics.rpcDuration.observe({ door: 'nip46', method: r.method ?? 'other' }, (Date.now() - req.receivedAt) / 1000);
      const traceId = req.item.traceId;
      void this.track(this.opts.publish(event, relays, traceId)).then((accepted) => {
        if (accepted === 0) this.opts.logger.warn({ traceId, jobId, relays: [...relays] }, 'no relay accepted a nip46 response');
        else this.opts.logger.debug({ traceId, jobId, eventId: event.id, accepted, relays: relays.size }, 'nip46 response published');
      });
    }
  }
}
