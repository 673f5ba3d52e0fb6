// The ingress half of the farm, shared by both doors (the HTTP RPC client and relay-ingest's NIP-46
// router): it puts requests on their shard's queue and hands each its answer.
// - Requests for one shard gather into ONE job (micro-batcher.ts): what arrives in one event-loop turn,
//   and, while the shard already has a job out from this process, whatever arrives until it is answered.
// - Admission and the add are one step (shard-queue.ts): the first items that fit, by the shard's limit
//   and by what it drains within the max wait, make the job; the rest are refused at once, as is
//   everything while Redis is unreachable. On the HTTP door, after a refusal for lack of room, the
//   shard's requests are refused here without a round trip for a short hold (refusingFor, checked before
//   a body is read).
// - The job is registered in flight before the add (a fast worker may reply first), then added. From the
//   moment the add may have reached Redis, a request is never answered as refused: if no answer comes,
//   its outcome is unknown (504), since the job may have run or may still run.
// - Answers come on this process's reply channel (replies.ts), matched by job id. At the reply timeout
//   the job's finished record is read (ShardQueue.lookup), so a lost reply costs latency, not the answer.
// What differs between the doors is a small DoorPolicy: the job's payload, how a reply opens, what an
// answer and a refusal do, and what a job not answered by the timeout gets (see LateJobPolicy).
import { randomBytes } from 'node:crypto';
import type { Logger } from '../logger.js';
import { metrics } from '../metrics.js';
import { isUp, onLinkLost, type RedisClient, redisReplyCode } from '../redis.js';
import type { ShardNames } from '../shard.js';
import { withDeadline } from '../deadline.js';
import type { ItemResult, JobData } from './jobs.js';
import { MicroBatcher } from './micro-batcher.js';
import { replyOf, subscribeReplies } from './replies.js';
import { type EnqueueOptions, keepSeconds, ShardQueue } from './shard-queue.js';

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
  /**
   * Whether a job id may have been added before (and must then not be added again): ids made by jobId()
   * from the requests themselves. The default ids are unique by construction and pay nothing.
   */
  readonly dedupe?: boolean;
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
  /** Unique per process: workers reply on its reply channels (replies.ts). */
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
/** Longest wait for an enqueue's answer or a fallback read: a frozen Redis must not hold requests. */
const REDIS_STEP_DEADLINE_MS = 1000;
/** An enqueue is refused by Redis at least this long before this side gives up on it. */
const DEADLINE_MARGIN_MS = 100;
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

/** Error replies with which Redis refuses a command without running it. */
const NOT_RUN = new Set(['MOVED', 'ASK', 'TRYAGAIN', 'CLUSTERDOWN', 'LOADING', 'MASTERDOWN', 'READONLY', 'BUSY']);

/**
 * ioredis's rejection of a command for a closed link. It comes before the command is written (the link
 * has ended, or, on a cluster without offline queue, the link to the slot's master is still being made,
 * as just after a failover) or when the link ends with the command unanswered: only the latter is
 * preceded by the link's loss (onLinkLost), within the same turn of the event loop.
 */
const LINK_CLOSED = 'Connection is closed.';

/** An enqueue given up on that Redis will refuse when it arrives: nothing was added. */
class EnqueueGivenUp extends Error {
  constructor() {
    super('enqueue timed out');
  }
}

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
  /** The job's stream entry, once the add answered ('' until then). */
  entryId: string;
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
  private readonly queue: ShardQueue;
  /** Per shard: Redis's clock minus this process's (ms), at least; measured by each enqueue. */
  private readonly serverClocks = new Map<number, number>();
  private readonly jobIdBase: string;
  private readonly admissionMaxWaitMs: number;
  /** Shards refused for lack of room a moment ago: until when (performance.now) and the retry hint. */
  private readonly holds = new Map<number, { until: number; retryAfterMs: number }>();
  private seq = 0;
  /** Links lost so far (the command connection closed, or a cluster node left its pool). */
  private linksLost = 0;
  private state: 'new' | 'started' | 'closed' = 'new';

  constructor(opts: ShardIngressOptions<E>) {
    this.opts = opts;
    this.policy = opts.policy;
    this.door = opts.policy.door;
    this.admissionMaxWaitMs = opts.admissionMaxWaitMs ?? 0;
    this.queue = new ShardQueue(opts.redis, opts.names, {
      limit: opts.queueLimit,
      maxWaitMs: this.admissionMaxWaitMs,
    });
    this.batcher = new MicroBatcher((shard, entries) => this.send(shard, entries), {
      maxBatch: MAX_BATCH,
      maxInFlight: 1,
      holdMaxMs: BATCH_HOLD_MAX_MS,
    });
    // Job ids must be unique across restarts of one instance id and may not contain ':'.
    this.jobIdBase = `${opts.instanceId.replace(/:/g, '_')}.${randomBytes(4).toString('hex')}`;
  }

  /** Subscribes to this process's reply channel; resolves once replies can arrive. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('ShardIngress.start: already started');
    onLinkLost(this.opts.redis, () => {
      this.linksLost++;
      if (this.policy.lateJob.kind === 'fail') this.failInFlight('queue unavailable');
    });
    await subscribeReplies(
      this.opts.subscriber,
      this.opts.names,
      this.opts.instanceId,
      this.opts.shardCount,
      (message) => this.onReply(message),
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
  }

  /** A message on the reply channel: a job's finished record, its reply in it (replies.ts). */
  onReply(message: string): void {
    let reply: { jobId?: unknown } | null | undefined;
    try {
      reply = replyOf(JSON.parse(message)) as { jobId?: unknown } | null | undefined;
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
    // Registered before the add: a fast worker may reply before the add's own reply reaches us.
    let settle!: () => void;
    const answered = new Promise<void>((resolve) => (settle = resolve));
    const job: InFlightJob<E> = { shard, entries: batch, entryId: '', timer: this.armTimeout(jobId), settle };
    this.jobs.set(jobId, job);
    const drop = () => {
      clearTimeout(job.timer);
      if (this.jobs.get(jobId) === job) this.jobs.delete(jobId);
      settle();
    };
    // Without an offline queue, a command given while the link is down is never sent.
    let sent = false;
    let linksLostBefore = this.linksLost;
    try {
      // All or nothing first: the job's data (sealed as one) is made for exactly the items it carries,
      // so a batch that does not fit whole is cut and enqueued again (overload only).
      let entries = batch;
      for (;;) {
        const data = this.policy.jobData(jobId, entries);
        sent = isUp(this.opts.redis);
        if (!sent) throw new Error('redis link down');
        linksLostBefore = this.linksLost;
        const r = await this.enqueue(shard, { jobId, items: entries.length, data, dedupe: this.policy.dedupe });
        if (this.jobs.get(jobId) !== job) return; // answered meanwhile (the link dropped, or closing)
        if (r.kind === 'late') {
          // Refused by Redis as past this side's deadline: nothing was added.
          sent = false;
          throw new Error('enqueue reached Redis past its deadline');
        }
        if (r.kind === 'duplicate') {
          // Added before (by this door, for the same requests): its reply or its record answers them.
          this.opts.logger.warn({ shard, jobId, door: this.door }, 'job added before; waiting for its answer');
          job.entryId = r.entryId;
          break;
        }
        if (r.kind === 'added' && r.admitted === entries.length) {
          job.entryId = r.entryId;
          break;
        }
        if (r.admitted <= 0) {
          // Nothing was added: none of these requests will ever run.
          drop();
          await this.refuseForRoom(shard, entries, r.retryAfterMs, 0);
          return;
        }
        // Only the first ones fit: the rest are refused now (no job carries them), the rest enqueued again.
        const refused = entries.slice(r.admitted);
        entries = entries.slice(0, r.admitted);
        job.entries = entries;
        await this.refuseForRoom(shard, refused, r.retryAfterMs, r.admitted);
      }
      if (this.opts.logger.isLevelEnabled('debug')) {
        for (const e of job.entries)
          this.opts.logger.debug(
            { traceId: e.item.traceId, itemId: e.item.id, door: this.door, shard, jobId },
            'request queued',
          );
      }
    } catch (err) {
      // Refused by Redis before the script ran (a moved slot, a failover): nothing was added either.
      if (err instanceof EnqueueGivenUp || NOT_RUN.has(redisReplyCode(err) ?? '')) sent = false;
      else if (sent && (err as Error).message === LINK_CLOSED && (await this.noLinkLostSince(linksLostBefore)))
        sent = false;
      this.opts.logger.warn({ err: (err as Error).message, shard, jobId, door: this.door, sent }, 'enqueue failed');
      // An add that may have reached Redis may have made the job: its requests stay in flight, and the
      // timeout (or the link's loss) answers them as of unknown outcome, never as refused. Past the
      // deadline it may still land: its requests are then answered 504, and the job may run.
      if (!sent) {
        if (this.jobs.get(jobId) === job) {
          drop();
          await this.refuse(job.entries, 'queue unavailable');
        }
        settle();
      }
    }
    await answered;
  }

  /** Whether no link was lost since the count was `before`, seen a turn of the event loop later. */
  private async noLinkLostSince(before: number): Promise<boolean> {
    await new Promise((resolve) => setImmediate(resolve));
    return this.linksLost === before;
  }

  /**
   * One all-or-nothing enqueue, given up after REDIS_STEP_DEADLINE_MS. Redis refuses it ('late') past a
   * deadline set a little before that, by Redis's own clock as the last enqueue on the shard showed it:
   * an add this side gave up on (and answered "not queued") must never land later.
   */
  private async enqueue(shard: number, job: Omit<EnqueueOptions, 'allOrNothing' | 'deadline' | 'keepSeconds'>) {
    const stepMs = Math.min(REDIS_STEP_DEADLINE_MS, this.opts.replyTimeoutMs);
    const sentAt = Date.now();
    const clock = this.serverClocks.get(shard);
    const deadline = clock === undefined ? 0 : sentAt + clock + stepMs - DEADLINE_MARGIN_MS;
    const r = await withDeadline(
      this.queue.enqueue(shard, {
        ...job,
        allOrNothing: true,
        deadline,
        keepSeconds: keepSeconds(this.opts.replyTimeoutMs),
      }),
      stepMs,
      'enqueue',
    ).catch((err: Error) => {
      // Given up with a deadline set: Redis adds nothing past it, so nothing was, or will be, added.
      if (deadline > 0 && err.message === 'enqueue timed out') throw new EnqueueGivenUp();
      throw err;
    });
    // The least the offset can be (Redis's time was read before the answer came): deadlines err early.
    this.serverClocks.set(shard, r.serverNow - Date.now());
    return r;
  }

  /** Refuses requests for lack of room (the rest of a cut batch, when the job carries `admitted`). */
  private async refuseForRoom(shard: number, refused: E[], retryAfterMs: number, admitted: number): Promise<void> {
    this.opts.logger.warn(
      { shard, door: this.door, requests: refused.length, retryAfterMs, admitted },
      'shard full: requests refused',
    );
    if (this.policy.holdAfterRefusal) this.hold(shard, retryAfterMs);
    await this.refuse(refused, 'shard overloaded', retryAfterMs);
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
      const state = await withDeadline(
        this.queue.lookup(job.shard, jobId, job.entryId),
        REDIS_STEP_DEADLINE_MS,
        'reading a job result',
      );
      if (state.kind === 'finished') stored = this.resultsOf(jobId, job, state.job.reply);
      else pending = state.kind === 'pending';
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
