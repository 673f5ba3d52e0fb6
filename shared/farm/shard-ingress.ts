// The ingress half of the farm, shared by both doors (the HTTP RPC client and relay-ingest's NIP-46
// router): it puts requests on their shard's queue and hands each its answer.
// - Requests for one shard gather into ONE job (micro-batcher.ts): what arrives in one event-loop turn,
//   and, while the shard already has a job out from this process, whatever arrives until it is answered.
// - Admission (admission.ts) comes before the add and takes the first items that fit, by the shard's
//   limit and by what it drains within the max wait; the rest are refused at once, as is everything while
//   Redis is unreachable. On the HTTP door, after a refusal for lack of room, the shard's requests are
//   refused here without a round trip for a short hold (refusingFor, checked before a body is read).
// - The job is registered in flight before the add (a fast worker may reply first), then added. From the
//   moment the add may have reached Redis, a request is never answered as refused: if no answer comes,
//   its outcome is unknown (504), since the job may have run or may still run.
// - Answers come on this process's reply channel (replies.ts), matched by job id. At the reply timeout
//   the job's stored return value is read (Job.fromId), so a lost reply costs latency, not the answer.
// What differs between the doors is a small DoorPolicy: the job's payload, how a reply opens, what an
// answer and a refusal do, and what a job not answered by the timeout gets (see LateJobPolicy).
import { randomBytes } from 'node:crypto';
import { Job } from 'bullmq';
import type { Logger } from '../logger.js';
import { metrics } from '../metrics.js';
import { isUp, onLinkLost, type RedisClient } from '../redis.js';
import type { ShardNames } from '../shard.js';
import { Admission } from './admission.js';
import { withDeadline } from '../deadline.js';
import type { ItemResult, JobData } from './jobs.js';
import { MicroBatcher } from './micro-batcher.js';
import { subscribeReplies } from './replies.js';
import { ShardQueues } from './shard-queues.js';

export type Door = 'http' | 'nip46';

/** Why requests were not put on a queue. */
export type Refusal = 'shard overloaded' | 'queue unavailable' | 'shutting down';

/** What the ingress needs of a waiting request: the item it carries (its id matches the result's). */
export interface IngressEntry {
  readonly item: { readonly id: string; readonly traceId: string };
}

/**
 * A job with no reply by the timeout, and no stored result either:
 * - 'fail': its requests are answered 504 (503 when Redis could not be read). A caller holding an HTTP
 *   connection wants a prompt answer it can retry; the same door also answers 503 at once, for every job
 *   out, when the command connection drops.
 * - 'wait': while the job is still queued or running (or Redis cannot be read) and `while` holds, wait
 *   another timeout. A NIP-46 request is claimed (exactly one job may ever run it, and a relay will not
 *   send it again), so giving up on it early would leave it unanswered for good.
 */
export type LateJobPolicy<E> = { kind: 'fail' } | { kind: 'wait'; while(entries: readonly E[]): boolean };

export interface DoorPolicy<E extends IngressEntry> {
  readonly door: Door;
  /** The job's id; default: unique per process and restart. Must not contain ':'. */
  jobId?(batch: readonly E[]): string;
  /** What the job carries. */
  jobData(jobId: string, entries: readonly E[]): JobData;
  /** The results a reply carries (a pub/sub message or the stored return value); throws when it cannot be opened. */
  results(jobId: string, reply: unknown): ItemResult[];
  /** Hands one request its answer: a worker's result, or the ingress's own 503/504. */
  answer(entry: E, result: ItemResult, jobId: string): void;
  /** Requests that were never put on a queue (no job runs them); `retryAfterMs`: when to try again. */
  refuse(entries: readonly E[], why: Refusal, retryAfterMs: number): void | Promise<void>;
  readonly lateJob: LateJobPolicy<E>;
  /**
   * After a refusal for lack of room, refuse the shard's requests here for a moment without asking Redis
   * (refusingFor). Right for a caller that retries on a 503; not for one whose refused request is lost.
   */
  readonly holdAfterRefusal: boolean;
}

export interface ShardIngressOptions<E extends IngressEntry> {
  /** Command connection: admission, adds, fallback reads. */
  redis: RedisClient;
  /** Connection the reply channel is subscribed on (it may carry other channels). */
  subscriber: RedisClient;
  names: ShardNames;
  shardCount: number;
  /** Items a shard may hold (QUEUE_LIMIT). */
  queueLimit: number;
  /** The longest an admitted request should wait in its shard, by the shard's drain rate (ADMISSION_MAX_WAIT_MS); 0: the limit only. */
  admissionMaxWaitMs?: number;
  /** Unique per process: workers reply on names.replyChannel(instanceId). */
  instanceId: string;
  /** How long to wait for a job's reply before reading its stored result. */
  replyTimeoutMs: number;
  logger: Logger;
  policy: DoorPolicy<E>;
}

/** Most requests in one job. */
const MAX_BATCH = 256;
/** Longest a batch waits for its shard's job in flight (only a stalled job lasts that long). */
const BATCH_HOLD_MAX_MS = 250;
/** Attempts of a job whose processing throws (stalled re-runs are counted apart). */
const JOB_ATTEMPTS = 3;
/** A finished job is kept this long past the reply timeout, so the fallback read finds its result. */
const KEEP_PAST_TIMEOUT_SECONDS = 60;
/** Longest wait for admission's answer or a fallback read: a frozen Redis must not hold requests. */
const REDIS_STEP_DEADLINE_MS = 1000;
/**
 * After a refusal for lack of room, the shard's requests are refused without a round trip for a while:
 * the time until one more item should fit, but at least an eighth of the max wait (room comes back a
 * job at a time, not an item at a time), and at most a second. A hold shorter than the max wait costs no
 * throughput: the shard still holds work for the rest of it.
 */
const HOLD_MIN_MS = 25;
const HOLD_MAX_MS = 1000;
const HOLD_MAX_WAIT_SHARE = 1 / 8;
/** Retry-After of a refusal that is not about room (Redis unreachable, closing). */
const RETRY_AFTER_MS = 1000;

const fail = (id: string, status: number, error: string): ItemResult => ({ id, ok: false, status, error });

/** An answer for a request whose job may have run or may still run. */
const unknownOutcome = (id: string, error: string): ItemResult => ({
  id,
  ok: false,
  status: 504,
  error,
  outcome: 'unknown',
});

interface InFlightJob<E> {
  shard: number;
  entries: E[];
  timer: NodeJS.Timeout;
  /** Tells the batcher the shard's slot is free. */
  settle(): void;
}

export class ShardIngress<E extends IngressEntry> {
  readonly door: Door;
  private readonly opts: ShardIngressOptions<E>;
  private readonly policy: DoorPolicy<E>;
  private readonly batcher: MicroBatcher<E>;
  private readonly jobs = new Map<string, InFlightJob<E>>();
  private readonly queues: ShardQueues;
  private readonly admission: Admission;
  private readonly jobIdBase: string;
  private readonly admissionMaxWaitMs: number;
  /** Shards refused for lack of room a moment ago: until when (performance.now) and the retry hint. */
  private readonly holds = new Map<number, { until: number; retryAfterMs: number }>();
  private seq = 0;
  private state: 'new' | 'started' | 'closed' = 'new';

  constructor(opts: ShardIngressOptions<E>) {
    this.opts = opts;
    this.policy = opts.policy;
    this.door = opts.policy.door;
    this.admissionMaxWaitMs = opts.admissionMaxWaitMs ?? 0;
    this.admission = new Admission(opts.redis, opts.names, {
      limit: opts.queueLimit,
      maxWaitMs: this.admissionMaxWaitMs,
    });
    this.queues = new ShardQueues(opts.redis, opts.names, (err, shard) =>
      opts.logger.warn({ err: err.message, shard, door: this.door }, 'shard queue error'),
    );
    this.batcher = new MicroBatcher((shard, entries) => this.send(shard, entries), {
      maxBatch: MAX_BATCH,
      maxInFlight: 1,
      holdMaxMs: BATCH_HOLD_MAX_MS,
    });
    // Job ids must be unique across restarts of one instance id and may not contain ':'.
    this.jobIdBase = `${opts.instanceId.replace(/:/g, '_')}.${randomBytes(4).toString('hex')}`;
  }

  /** Subscribes to this process's reply channel and readies every shard's queue; resolves once replies can arrive. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('ShardIngress.start: already started');
    if (this.policy.lateJob.kind === 'fail') onLinkLost(this.opts.redis, () => this.failInFlight('queue unavailable'));
    await subscribeReplies(this.opts.subscriber, this.opts.names, this.opts.instanceId, (message) =>
      this.onReply(message),
    );
    // Every shard's Queue is made now: one made later while Redis is down would wait for it to come back.
    await Promise.all(
      Array.from({ length: this.opts.shardCount }, (_, shard) => this.queues.get(shard).waitUntilReady()),
    );
    this.state = 'started';
  }

  /** Both Redis links (commands and replies) are up (a status check, no round trip). */
  get connected(): boolean {
    return isUp(this.opts.redis) && isUp(this.opts.subscriber);
  }

  /** Requests waiting for an answer (gathering into a job, or in a job out). */
  get waiting(): number {
    let n = this.batcher.pending;
    for (const j of this.jobs.values()) n += j.entries.length;
    return n;
  }

  /** Queues a request on its shard; the policy's answer or refuse is called for it exactly once. */
  submit(shard: number, entry: E): void {
    if (!Number.isInteger(shard) || shard < 0 || shard >= this.opts.shardCount) {
      throw new RangeError(`ShardIngress.submit: shard ${shard} is outside 0..${this.opts.shardCount - 1}`);
    }
    if (this.state !== 'started') return void this.refuse([entry], 'shutting down');
    // No offline queue is waited on: while Redis is unreachable a request is refused at once.
    if (!this.connected) return void this.refuse([entry], 'queue unavailable');
    const held = this.refusingFor(shard);
    if (held > 0) return void this.refuse([entry], 'shard overloaded', held);
    this.batcher.add(shard, entry);
  }

  /**
   * While the shard was refused for lack of room a moment ago (on this process): the Retry-After of a
   * refusal, ms; 0 otherwise. A request for it is refused without asking Redis.
   */
  refusingFor(shard: number): number {
    if (this.holds.size === 0) return 0;
    const hold = this.holds.get(shard);
    if (!hold) return 0;
    if (performance.now() >= hold.until) {
      this.holds.delete(shard);
      return 0;
    }
    return hold.retryAfterMs;
  }

  /** Whether any shard may be held (a cheap test before finding a request's shard). */
  holdsAny(): boolean {
    return this.holds.size > 0;
  }

  /** Sends every gathering batch now, whether or not its shard has a job out (draining). */
  flush(): void {
    this.batcher.flushAll();
  }

  /** Refuses what was not sent yet and answers every job out 503; the connections stay the caller's. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.batcher.flushAll();
    this.failInFlight('shutting down');
    await this.queues.close();
  }

  /** A message on the reply channel. */
  onReply(message: string): void {
    let reply: { jobId?: unknown } | null;
    try {
      reply = JSON.parse(message) as { jobId?: unknown } | null;
    } catch {
      this.opts.logger.warn({ door: this.door }, 'unreadable reply dropped');
      return;
    }
    const jobId = reply?.jobId;
    const job = typeof jobId === 'string' ? this.jobs.get(jobId) : undefined;
    if (!job || typeof jobId !== 'string') return; // late (already answered) or not ours
    this.finish(jobId, job, this.resultsOf(jobId, job, reply));
  }

  private refuse(entries: readonly E[], why: Refusal, retryAfterMs = RETRY_AFTER_MS): Promise<void> {
    if (why === 'shard overloaded') metrics.backpressureRejected.inc({ door: this.door }, entries.length);
    return Promise.resolve(this.policy.refuse(entries, why, retryAfterMs)).catch((err: Error) =>
      this.opts.logger.warn({ door: this.door, err: err.message }, 'refusing requests failed'),
    );
  }

  /** The results a reply carries; when they do not open (altered, another key), a 500 for each request. */
  private resultsOf(jobId: string, job: InFlightJob<E>, reply: unknown): ItemResult[] {
    try {
      return this.policy.results(jobId, reply);
    } catch (err) {
      this.opts.logger.error(
        { jobId, shard: job.shard, door: this.door, err: (err as Error).message },
        'a reply could not be opened',
      );
      return job.entries.map((e) => fail(e.item.id, 500, 'reply could not be opened'));
    }
  }

  private async send(shard: number, batch: E[]): Promise<void> {
    if (this.state !== 'started') return this.refuse(batch, 'shutting down');
    const jobId = this.policy.jobId?.(batch) ?? `${this.jobIdBase}.${++this.seq}`;
    let admitted: number;
    let retryAfterMs: number;
    try {
      // Past the deadline the admission may still land: its ledger entry then names a job never added,
      // which reconcile drops (nothing runs these requests either way).
      ({ admitted, retryAfterMs } = await withDeadline(
        this.admission.request(shard, jobId, batch.length),
        Math.min(REDIS_STEP_DEADLINE_MS, this.opts.replyTimeoutMs),
        'admission',
      ));
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message, shard, jobId, door: this.door }, 'admission failed');
      return this.refuse(batch, 'queue unavailable');
    }
    // The shard had room for the first `admitted` requests: they make the job, the rest are refused now.
    const entries = batch.slice(0, admitted);
    if (admitted < batch.length) {
      this.opts.logger.warn(
        { shard, door: this.door, requests: batch.length - admitted, retryAfterMs },
        'shard full: requests refused',
      );
      if (this.policy.holdAfterRefusal) this.hold(shard, retryAfterMs);
      await this.refuse(batch.slice(admitted), 'shard overloaded', retryAfterMs);
    }
    if (entries.length === 0) return;
    // Registered before the add: a fast worker may reply before the add's own reply reaches us.
    let settle!: () => void;
    const answered = new Promise<void>((resolve) => (settle = resolve));
    const job: InFlightJob<E> = { shard, entries, timer: this.armTimeout(jobId), settle };
    this.jobs.set(jobId, job);
    const keep = { age: Math.ceil(this.opts.replyTimeoutMs / 1000) + KEEP_PAST_TIMEOUT_SECONDS };
    // Without an offline queue, a command given while the link is down is never sent.
    let sent = false;
    try {
      const data = this.policy.jobData(jobId, entries);
      sent = isUp(this.opts.redis);
      if (!sent) throw new Error('redis link down');
      await this.queues
        .get(shard)
        .add(data.type, data, { jobId, attempts: JOB_ATTEMPTS, removeOnComplete: keep, removeOnFail: keep });
      if (this.opts.logger.isLevelEnabled('debug')) {
        for (const e of entries)
          this.opts.logger.debug(
            { traceId: e.item.traceId, itemId: e.item.id, door: this.door, shard, jobId },
            'request queued',
          );
      }
    } catch (err) {
      this.opts.logger.warn(
        { err: (err as Error).message, shard, jobId, door: this.door, sent },
        'adding a job failed',
      );
      // An add that may have reached Redis may have made the job: its requests stay in flight, and the
      // timeout (or the link's loss) answers them as of unknown outcome, never as refused.
      if (!sent) {
        this.admission.release(shard, jobId).catch(() => undefined);
        if (this.jobs.get(jobId) === job) {
          clearTimeout(job.timer);
          this.jobs.delete(jobId);
          await this.refuse(entries, 'queue unavailable');
        }
        settle();
      }
    }
    await answered;
  }

  /** Refuses the shard's requests here for a moment after a refusal for lack of room. */
  private hold(shard: number, retryAfterMs: number): void {
    const least = Math.max(HOLD_MIN_MS, this.admissionMaxWaitMs * HOLD_MAX_WAIT_SHARE);
    const ms = Math.min(Math.max(retryAfterMs, least), HOLD_MAX_MS);
    this.holds.set(shard, { until: performance.now() + ms, retryAfterMs: Math.max(retryAfterMs, 1) });
  }

  private armTimeout(jobId: string): NodeJS.Timeout {
    return setTimeout(() => void this.timeOut(jobId), this.opts.replyTimeoutMs);
  }

  private async timeOut(jobId: string): Promise<void> {
    const job = this.jobs.get(jobId);
    if (!job) return;
    let stored: ItemResult[] | undefined;
    let pending = false;
    let unreachable = false;
    try {
      const j = await withDeadline(
        Job.fromId(this.queues.get(job.shard), jobId),
        REDIS_STEP_DEADLINE_MS,
        'reading a job result',
      );
      if (j?.finishedOn && j.returnvalue) stored = this.resultsOf(jobId, job, j.returnvalue);
      else pending = j !== undefined && !j.finishedOn;
    } catch (err) {
      unreachable = true;
      this.opts.logger.warn({ err: (err as Error).message, jobId, door: this.door }, 'reading a job result failed');
    }
    if (this.jobs.get(jobId) !== job) return; // the reply arrived while we read
    const late = this.policy.lateJob;
    if (
      !stored &&
      (pending || unreachable) &&
      late.kind === 'wait' &&
      this.state === 'started' &&
      late.while(job.entries)
    ) {
      this.opts.logger.info({ jobId, shard: job.shard, door: this.door }, 'job not answered yet; still waiting');
      job.timer = this.armTimeout(jobId);
      return;
    }
    this.finish(jobId, job, stored ?? [], unreachable ? 'queue unavailable' : 'no answer in time');
  }

  /** Answers the requests of a job from `results`; one without a result gets 504 of unknown outcome, saying `missing`. */
  private finish(jobId: string, job: InFlightJob<E>, results: ItemResult[], missing = 'no answer in time'): void {
    clearTimeout(job.timer);
    this.jobs.delete(jobId);
    job.settle();
    const byId = new Map(results.map((r) => [r.id, r]));
    for (const e of job.entries) {
      let r = byId.get(e.item.id);
      if (!r) {
        this.opts.logger.warn(
          { traceId: e.item.traceId, jobId, shard: job.shard, door: this.door, why: missing },
          'no answer in time; outcome unknown',
        );
        r = unknownOutcome(e.item.id, missing);
      }
      this.policy.answer(e, r, jobId);
    }
  }

  /**
   * Answers every request whose job is out at once (a late reply is then ignored): 504 of unknown outcome,
   * since each job was added, or its add sent, and may run.
   */
  private failInFlight(error: string): void {
    for (const [jobId, job] of this.jobs) {
      clearTimeout(job.timer);
      this.jobs.delete(jobId);
      job.settle();
      for (const e of job.entries) this.policy.answer(e, unknownOutcome(e.item.id, error), jobId);
    }
  }
}
