// The consumer of one owned shard's queue (shared/farm/shard-queue.ts, docs/QUEUE.md). It reads the
// shard's stream in the consumer group on a connection of its own (the read blocks), runs up to
// `concurrency` jobs at once so the crypto pool stays busy, and completes each job (its items go back to
// the shard's count, its record is kept for the fallback read) in the same step as its reply's publish
// and, on a single Redis, its activity's append (shard-queue.lua).
// - A job read by a worker that died, or lost the shard, stays pending in the group: every
//   stalledIntervalMs the owner claims what has been idle past the lock (JOB_LOCK_MS) and runs it; one
//   delivered more than maxStalledCount + 1 times is failed for good (it kills its workers).
// - A job running longer than half the lock has its idle time reset, so it is not claimed from under it.
// - A processor that throws is tried again here, JOB_ATTEMPTS times in all, then failed for good: its
//   requests get 503 "worker failed".
import { setTimeout as delay } from 'node:timers/promises';
import { closeRedis, isCluster, type RedisClient, redisReplyCode } from '../shared/redis.js';
import type { JobData, ReplyMessage, SealedReplyMessage } from '../shared/farm/jobs.js';
import type { Logger } from '../shared/logger.js';
import type { ShardNames } from '../shared/shard.js';
import { decodeJobData } from '../shared/farm/job-data.js';
import { publishReply, replyChannel } from '../shared/farm/replies.js';
import {
  finishedRecord,
  GROUP,
  type JobRun,
  parseEntry,
  type QueuedJob,
  type ShardQueue,
} from '../shared/farm/shard-queue.js';
import type { ActivitySink } from './activity.js';
import type { Nip46Processor } from './nip46-processor.js';
import type { RpcProcessor } from './rpc-processor.js';
import { failedReply } from './shard-job.js';

/** A NIP-46 job's reply, or an RPC job's (sealed). */
type Reply = ReplyMessage | SealedReplyMessage;

export interface ShardWorkerOptions {
  shard: number;
  names: ShardNames;
  /** This worker's name in the consumer group (the member id). */
  consumer: string;
  /** For this shard's blocking reads only; the worker closes it. */
  reader: RedisClient;
  /** Command connection (the queue's): completions, replies, claims. */
  commands: RedisClient;
  /** Where the jobs' activity goes: appended as a job finishes, before its reply leaves. */
  activity?: ActivitySink;
  queue: ShardQueue;
  processor: RpcProcessor;
  /** Runs 'nip46' jobs; without it they fail as an unknown type. */
  nip46Processor?: Nip46Processor;
  logger: Logger;
  /** Jobs of this shard in flight at once. */
  concurrency: number;
  /** A pending job idle this long is claimed by the shard's owner. */
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxStalledCount: number;
  /** How long a finished job's record is kept, seconds. */
  keepSeconds: number;
  /** How long one read waits for new jobs (and so about the longest a close waits for it); default 500 ms. */
  blockMs?: number;
}

/** Tries of a job whose processing throws (claims after a crash are counted apart). */
export const JOB_ATTEMPTS = 3;
/** Most jobs claimed in one go. */
const CLAIM_COUNT = 64;

type XEntry = [string, string[] | null];

interface Running {
  job: QueuedJob;
  /** When its idle time in the group was last reset (read, claimed, extended). */
  touchedAt: number;
  done: Promise<void>;
}

class UnknownJobType extends Error {}

function parseData(job: QueuedJob): JobData | undefined {
  try {
    return decodeJobData(job.data) as JobData;
  } catch {
    return undefined;
  }
}

export class ShardWorker {
  readonly shard: number;
  private readonly opts: ShardWorkerOptions;
  private readonly key: string;
  private readonly blockMs: number;
  private readonly running = new Map<string, Running>();
  private closing = false;
  /** The consumer group is made when a read finds none (a new shard, or a Redis that lost its data). */
  private groupReady = true;
  private slotFreed: (() => void) | undefined;
  private readonly reading: Promise<void>;
  private readonly timer: NodeJS.Timeout;
  private claiming = false;

  constructor(opts: ShardWorkerOptions) {
    this.opts = opts;
    this.shard = opts.shard;
    this.key = opts.names.jobs(opts.shard);
    this.blockMs = opts.blockMs ?? 500;
    this.reading = this.readLoop();
    this.timer = setInterval(() => void this.claimAndExtend(), opts.stalledIntervalMs);
    this.timer.unref();
  }

  /** Jobs running now. */
  get active(): number {
    return this.running.size;
  }

  /**
   * Stops taking jobs and waits for the running ones, or until `giveUp` settles (the shutdown's jobs
   * timeout); with `force` (the lease was lost) it does not wait for them. A job unfinished then stays
   * pending in the group, and the shard's next owner claims it once it has been idle past the lock.
   */
  async close(giveUp?: Promise<unknown>, { force = false } = {}): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.timer);
    this.wake();
    // A read in progress ends within its block time; one stuck on a dead link is cut.
    if (force) this.opts.reader.disconnect();
    const read = await Promise.race([this.reading.then(() => true), delay(this.blockMs + 250).then(() => false)]);
    if (!read) this.opts.reader.disconnect();
    await closeRedis(this.opts.reader);
    if (force || this.running.size === 0) return;
    const all = Promise.allSettled([...this.running.values()].map((r) => r.done)).then(() => true);
    const finished = giveUp ? await Promise.race([all, giveUp.then(() => false)]) : await all;
    if (!finished)
      this.opts.logger.warn(
        { shard: this.shard },
        'jobs still running at shutdown; leaving them to be run again elsewhere',
      );
  }

  private wake(): void {
    const w = this.slotFreed;
    this.slotFreed = undefined;
    w?.();
  }

  private async readLoop(): Promise<void> {
    const { logger, shard } = this.opts;
    while (!this.closing) {
      const free = this.opts.concurrency - this.running.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        continue;
      }
      try {
        if (!this.groupReady) {
          await this.opts.queue.ensureGroup(shard);
          this.groupReady = true;
        }
        // Jobs read as a close began are run too: the close waits for them like the others.
        for (const [entryId, fields] of await this.read(free)) this.start(entryId, fields);
      } catch (err) {
        if (this.closing) break;
        if (redisReplyCode(err) === 'NOGROUP' && this.groupReady) {
          this.groupReady = false;
          continue;
        }
        logger.warn({ shard, err: (err as Error).message }, 'reading the shard queue failed; will retry');
        await delay(250);
      }
    }
  }

  private async read(count: number): Promise<XEntry[]> {
    const res = (await (this.opts.reader.xreadgroup as (...a: (string | number)[]) => Promise<unknown>)(
      'GROUP',
      GROUP,
      this.opts.consumer,
      'COUNT',
      count,
      'BLOCK',
      this.blockMs,
      'STREAMS',
      this.key,
      '>',
    )) as [string, XEntry[]][] | null;
    return res?.[0]?.[1] ?? [];
  }

  private start(entryId: string, fields: string[] | null): void {
    if (this.running.has(entryId)) return;
    const job = parseEntry(entryId, fields);
    if (!job) {
      // Deleted meanwhile (a claim of a completed entry), or malformed: nothing to run.
      if (fields) void this.drop(entryId);
      return;
    }
    const entry: Running = { job, touchedAt: Date.now(), done: Promise.resolve() };
    this.running.set(entryId, entry);
    entry.done = this.run(job).finally(() => {
      this.running.delete(entryId);
      this.wake();
    });
  }

  private async drop(entryId: string): Promise<void> {
    this.opts.logger.error({ shard: this.shard, entryId }, 'malformed shard queue entry dropped');
    await this.opts.commands
      .multi()
      .xack(this.key, GROUP, entryId)
      .xdel(this.key, entryId)
      .exec()
      .catch(() => undefined);
  }

  private async run(job: QueuedJob): Promise<void> {
    const processedOn = Date.now();
    const data = parseData(job);
    for (let attempt = 1; ; attempt++) {
      try {
        const reply = await this.process(job, data);
        return await this.finish(job, data, reply, { processedOn, attempts: attempt });
      } catch (err) {
        const final = attempt >= JOB_ATTEMPTS || err instanceof UnknownJobType;
        this.opts.logger.error(
          {
            shard: this.shard,
            jobId: job.id,
            attempt,
            final,
            err: (err as Error).message,
            traceIds: data?.items?.map((i) => i.traceId),
          },
          'shard job failed',
        );
        if (final) return this.fail(job, data, (err as Error).message, processedOn, attempt);
      }
    }
  }

  private process(job: QueuedJob, data: JobData | undefined): Promise<Reply> {
    if (data?.type === 'nip46' && this.opts.nip46Processor && Array.isArray(data.items))
      return this.opts.nip46Processor(job.id, data);
    if (data?.type !== 'rpc' || !Array.isArray(data.items))
      return Promise.reject(new UnknownJobType('unknown job type'));
    return this.opts.processor(job.id, data);
  }

  /** Fails a job for good: every request of it gets 503 "worker failed". */
  private fail(
    job: QueuedJob,
    data: JobData | undefined,
    failedReason: string,
    processedOn: number,
    attempts: number,
  ): Promise<void> {
    const items = Array.isArray(data?.items) ? data.items : [];
    const reply = failedReply(job.id, { items }, 503, 'worker failed');
    return this.finish(job, data, reply, { processedOn, attempts, failedReason });
  }

  /**
   * Appends the job's activity, completes the job and publishes its record (the reply in it). On a single Redis the three
   * are one script call (the activity first, the reply last); on a cluster the activity stream is in
   * another slot, so its append is awaited first and the other two are one call. When the completion
   * fails, the reply is still published on its own (the job stays pending and is claimed and run again).
   */
  private async finish(job: QueuedJob, data: JobData | undefined, reply: Reply, run: Omit<JobRun, 'finishedOn'>) {
    const { queue, commands, names, logger, activity } = this.opts;
    // Before the answer leaves: a crash from here on loses no activity.
    const append = isCluster(commands) ? undefined : activity?.take?.();
    if (!append) await activity?.persist?.();
    const replyTo = typeof data?.replyTo === 'string' ? data.replyTo : undefined;
    const record = finishedRecord(job, { ...run, finishedOn: Date.now() }, reply);
    try {
      const { completed } = await queue.complete(this.shard, job, {
        record,
        keepSeconds: this.opts.keepSeconds,
        ...(replyTo ? { channel: replyChannel(commands, names, replyTo, this.shard) } : {}),
        ...(append ? { append } : {}),
      });
      if (!completed) logger.warn({ shard: this.shard, jobId: job.id }, 'job was already completed elsewhere');
    } catch (err) {
      append?.failed();
      logger.warn(
        { shard: this.shard, jobId: job.id, err: (err as Error).message },
        'completing a job failed; it will be claimed and run again',
      );
      if (replyTo)
        await publishReply(commands, names, replyTo, this.shard, record).catch((e: unknown) =>
          logger.warn(
            { shard: this.shard, jobId: job.id, err: (e as Error).message },
            'publishing a reply failed; the ingress reads the record',
          ),
        );
    }
  }

  /** Resets the idle time of long jobs, then claims and runs jobs idle past the lock. */
  private async claimAndExtend(): Promise<void> {
    if (this.claiming || this.closing) return;
    this.claiming = true;
    try {
      await this.extend();
      await this.claim();
    } catch (err) {
      if (redisReplyCode(err) === 'NOGROUP') this.groupReady = false;
      else this.opts.logger.warn({ shard: this.shard, err: (err as Error).message }, 'claiming stalled jobs failed');
    } finally {
      this.claiming = false;
    }
  }

  private async extend(): Promise<void> {
    const now = Date.now();
    const long = [...this.running.values()].filter((r) => now - r.touchedAt >= this.opts.lockDurationMs / 2);
    if (long.length === 0) return;
    await this.opts.commands.xclaim(
      this.key,
      GROUP,
      this.opts.consumer,
      0,
      ...long.map((r) => r.job.entryId),
      'JUSTID',
    );
    for (const r of long) r.touchedAt = now;
  }

  private async claim(): Promise<void> {
    const { commands, consumer, lockDurationMs, maxStalledCount, logger } = this.opts;
    const [, claimed] = (await commands.xautoclaim(
      this.key,
      GROUP,
      consumer,
      lockDurationMs,
      '0-0',
      'COUNT',
      CLAIM_COUNT,
    )) as [string, XEntry[]];
    const fresh = claimed.filter(([id, fields]) => fields !== null && !this.running.has(id));
    if (fresh.length === 0 || this.closing) return;
    // How often each was delivered (read, then claimed after each crash).
    const pending = (await commands.xpending(
      this.key,
      GROUP,
      fresh[0]![0],
      fresh[fresh.length - 1]![0],
      fresh.length + this.running.size + 1,
      consumer,
    )) as [string, string, number, number][];
    const deliveries = new Map(pending.map(([id, , , n]) => [id, Number(n)]));
    for (const [entryId, fields] of fresh) {
      const job = parseEntry(entryId, fields);
      if (!job) {
        void this.drop(entryId);
        continue;
      }
      const n = deliveries.get(entryId) ?? 0;
      logger.warn({ shard: this.shard, jobId: job.id, deliveries: n }, 'stalled job will run again');
      if (n > maxStalledCount + 1) {
        const data = parseData(job);
        const entry: Running = { job, touchedAt: Date.now(), done: Promise.resolve() };
        this.running.set(entryId, entry);
        entry.done = this.fail(job, data, 'job stalled more than allowable limit', Date.now(), 0).finally(() => {
          this.running.delete(entryId);
          this.wake();
        });
      } else this.start(entryId, fields);
    }
  }
}
