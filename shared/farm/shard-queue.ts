// Keyfarm's queue of one shard (docs/QUEUE.md): a Redis stream of jobs read by the consumer group
// `workers`, with admission fused into the add and the release into the completion (shard-queue.lua):
// - enqueue admits as many of a job's items as fit (by the shard's limit and, with a max wait, by what
//   the shard drains within it) and adds the job in the same step, so the count is always the sum of the
//   items in the stream and no admission can be orphaned;
// - complete removes a finished job's entry, gives its items back and keeps its record (the data's
//   metadata and the reply) for the ingress's fallback read, in one step, and only once;
// - reconcile rebuilds the count from the stream (the shard's owner, on acquiring it and periodically).
import { readFileSync } from 'node:fs';
import { isCluster, luaCommand, type RedisClient, redisReplyCode } from '../redis.js';
import type { ShardNames } from '../shard.js';
import { decodeJobData, encodeJobData } from './job-data.js';
import type { JobData, ReplyMessage, SealedReplyMessage } from './jobs.js';

const LUA = readFileSync(new URL('./shard-queue.lua', import.meta.url), 'utf8');
const COMMAND = 'keyfarmShardQueue';

/** The consumer group every worker reads a shard's stream in. */
export const GROUP = 'workers';

/** The drain rate averages over about this much of a shard's busy time. */
export const DRAIN_WINDOW_MS = 5000;
/**
 * A shard holding fewer items than this takes more whatever its rate: a shard whose rate is not measured
 * yet, or fell to nothing in a stall, still takes some work and so measures again.
 */
export const ADMISSION_FLOOR = 64;
/** A finished job's record is kept this long past the reply timeout, so the fallback read finds it. */
export const KEEP_PAST_TIMEOUT_SECONDS = 60;

/** How long a finished job's record (and a NIP-46 job id's dedupe mark) is kept, for a reply timeout. */
export function keepSeconds(replyTimeoutMs: number): number {
  return Math.ceil(replyTimeoutMs / 1000) + KEEP_PAST_TIMEOUT_SECONDS;
}

/**
 * The script, defined twice: with four keys, and with the activity stream as a fifth (a completion on a
 * single Redis). The number of keys is fixed in each, so a call's first argument is a key of the shard:
 * an auto-pipelining cluster client groups a call by its first argument's slot.
 */
const COMMAND_WITH_APPEND = 'keyfarmShardQueueAppend';
type QueueCommand = (...keysAndArgs: (string | number)[]) => Promise<unknown>;

export interface EnqueueOptions {
  /** The job's id (no ':'). */
  jobId: string;
  /** Items (requests) the job carries. */
  items: number;
  data: JobData;
  /** Refuse the id when a job of that id was added before (NIP-46: a request runs at most once). */
  dedupe?: boolean;
  /** When not all items fit, add nothing and say how many would (the caller cuts the batch). */
  allOrNothing?: boolean;
  /** Past this time by the Redis server's clock (ms), add nothing: the caller has given up; 0: none. */
  deadline?: number;
  /** How long a dedupe mark is kept, seconds. */
  keepSeconds?: number;
}

export type Enqueued =
  /** `admitted` of the items (the first ones) were added as entry `entryId` (0: none, nothing added). */
  | { kind: 'added'; admitted: number; retryAfterMs: number; entryId: string }
  /** All or nothing, and only `admitted` would fit: nothing added. */
  | { kind: 'cut'; admitted: number; retryAfterMs: number }
  /** A job of this id was added before: nothing added; `entryId` that job's entry ('' when unknown). */
  | { kind: 'duplicate'; entryId: string }
  /** It arrived past its deadline: nothing added. */
  | { kind: 'late' };

/** The Redis server's clock when it ran an enqueue, ms (so a caller can set deadlines by it). */
export type ServerTime = { serverNow: number };

/** A job as the stream holds it. */
export interface QueuedJob {
  entryId: string;
  id: string;
  type: string;
  items: number;
  /** The JobData as added (job-data.ts encodeJobData; decodeJobData reads it). */
  data: string;
  /** When it was added, ms. */
  addedAt: number;
}

/** What a finished job's record holds (P:job:<id>); `data` without an RPC job's sealed calls (recordData). */
export interface FinishedJob {
  id: string;
  type: string;
  items: number;
  data: unknown;
  addedAt: number;
  processedOn: number;
  finishedOn: number;
  attempts: number;
  failedReason?: string;
  reply: ReplyMessage | SealedReplyMessage;
}

/** What became of a job, read by the ingress when its reply did not come. */
export type JobState = { kind: 'finished'; job: FinishedJob } | { kind: 'pending' } | { kind: 'gone' };

/** A stream entry's fields (id, type, items, data, at) as a job; undefined when malformed. */
export function parseEntry(entryId: string, fields: string[] | null): QueuedJob | undefined {
  if (!fields) return undefined;
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  const items = Number(f.items);
  if (f.id === undefined || f.data === undefined || !Number.isInteger(items)) return undefined;
  return { entryId, id: f.id, type: f.type ?? '', items, data: f.data, addedAt: Number(f.at) || 0 };
}

/**
 * What a finished job's record keeps of its data. The record is for the ingress's fallback read, which
 * needs only the reply, and for the operators' board; the data came with the job and nothing runs it
 * again. So of an RPC job it keeps the readable metadata an operator traces a request by (each item's id,
 * method and trace id, the door, the reply channel) and not the sealed calls, nor the key and
 * authorization ids the worker loaded keys with. A NIP-46 job's data is kept whole; data that is not JSON
 * is kept as the string it was.
 */
export function recordData(data: string): unknown {
  let parsed: unknown;
  try {
    parsed = decodeJobData(data);
  } catch {
    return data;
  }
  if (parsed === null || typeof parsed !== 'object' || (parsed as { type?: unknown }).type !== 'rpc') return parsed;
  const { calls: _sealed, items, ...rest } = parsed as Record<string, unknown>;
  if (!Array.isArray(items)) return rest;
  const kept = items.map((item: unknown) => {
    if (item === null || typeof item !== 'object') return item;
    const { id, method, traceId } = item as Record<string, unknown>;
    return { id, method, traceId };
  });
  return { ...rest, items: kept };
}

/** How a job ran, as its finished record keeps it. */
export interface JobRun {
  processedOn: number;
  finishedOn: number;
  attempts: number;
  failedReason?: string;
}

/** A finished job's record as JSON (FinishedJob), its data as recordData keeps it: kept, and published as the reply. */
export function finishedRecord(job: QueuedJob, run: JobRun, reply: ReplyMessage | SealedReplyMessage): string {
  return JSON.stringify({
    id: job.id,
    type: job.type,
    items: job.items,
    data: recordData(job.data),
    addedAt: job.addedAt,
    processedOn: run.processedOn,
    finishedOn: run.finishedOn,
    attempts: run.attempts,
    ...(run.failedReason === undefined ? {} : { failedReason: run.failedReason }),
    reply,
  });
}

/** What a completion writes besides the entry's removal, in the same step. */
export interface Completion {
  /** finishedRecord of the job: kept for the fallback read, and published as the reply. */
  record: string;
  /** How long the record is kept, seconds. */
  keepSeconds: number;
  /** The channel the record is published on (replies.ts replyChannel, this shard's); none: only kept. */
  channel?: string;
  /**
   * An entry appended to another stream first (the job's activity), on a single Redis only: a cluster
   * keeps that stream in another slot.
   */
  append?: { key: string; field: string; value: string; maxLength: number };
}

/** What a completion did. */
export interface Completed {
  /** The entry was removed and the record kept by this completion (false: another one did it before). */
  completed: boolean;
  /** The processes that heard the reply. */
  receivers: number;
}

export interface ShardQueueOptions {
  /** Items a shard may hold waiting or running (QUEUE_LIMIT). */
  limit: number;
  /**
   * The longest an admitted item should wait, from the shard's measured drain rate (ADMISSION_MAX_WAIT_MS);
   * 0 or unset: the limit only. Only the adding side (the ingress) needs it.
   */
  maxWaitMs?: number;
}

/** The queues of every shard, on one command connection. */
export class ShardQueue {
  readonly limit: number;
  private readonly maxWaitMs: number;
  private readonly command: QueueCommand;
  private readonly commandWithAppend: QueueCommand;

  constructor(
    private readonly redis: RedisClient,
    readonly names: ShardNames,
    opts: ShardQueueOptions,
  ) {
    this.limit = opts.limit;
    this.maxWaitMs = opts.maxWaitMs ?? 0;
    this.command = luaCommand<QueueCommand>(redis, COMMAND, 4, LUA);
    this.commandWithAppend = luaCommand<QueueCommand>(redis, COMMAND_WITH_APPEND, 5, LUA);
  }

  private run(shard: number, jobId: string, op: string, ...args: (string | number)[]): Promise<unknown> {
    const { names } = this;
    return this.command(
      names.jobs(shard),
      names.meter(shard),
      names.job(shard, jobId),
      names.dedupe(shard, jobId),
      op,
      DRAIN_WINDOW_MS,
      ...args,
    );
  }

  /**
   * Admits the job's items and adds it, in one step. Without allOrNothing the job is added carrying the
   * first `admitted` items: its data must then hold exactly those, so a caller whose data cannot be cut
   * after the fact asks all or nothing and, on 'cut', enqueues again with the cut batch.
   */
  async enqueue(shard: number, job: EnqueueOptions): Promise<Enqueued & ServerTime> {
    if (!Number.isInteger(job.items) || job.items < 1)
      throw new RangeError(`enqueue: items must be a positive integer, got ${job.items}`);
    if (job.jobId.includes(':') || job.jobId.length === 0) throw new RangeError('enqueue: a job id has no ":"');
    const floor = Math.min(this.limit, ADMISSION_FLOOR);
    const [admitted, retryAfterMs, entryId, serverNow] = (await this.run(
      shard,
      job.jobId,
      'enqueue',
      job.jobId,
      job.items,
      this.limit,
      this.maxWaitMs,
      floor,
      job.data.type,
      encodeJobData(job.data),
      job.dedupe ? '1' : '0',
      job.allOrNothing ? '1' : '0',
      job.keepSeconds ?? 120,
      Math.max(0, Math.floor(job.deadline ?? 0)),
    )) as [number, number, string, number];
    if (admitted === -2) return { kind: 'late', serverNow };
    if (admitted === -1) return { kind: 'duplicate', entryId, serverNow };
    if (admitted > 0 && entryId === '') return { kind: 'cut', admitted, retryAfterMs, serverNow };
    return { kind: 'added', admitted: Math.max(0, admitted), retryAfterMs, entryId, serverNow };
  }

  /**
   * In one step: appends `append` (the job's activity), removes a finished job's entry, gives its items
   * back, keeps its record, and publishes the record as the reply. Only the first completion of an entry
   * removes it and keeps the record; every one appends and publishes.
   */
  async complete(shard: number, job: QueuedJob, c: Completion): Promise<Completed> {
    const { names } = this;
    const keys = [names.jobs(shard), names.meter(shard), names.job(shard, job.id), names.dedupe(shard, job.id)];
    const args: (string | number)[] = [
      'complete',
      DRAIN_WINDOW_MS,
      job.entryId,
      job.items,
      c.record,
      c.keepSeconds,
      c.channel ?? '',
      isCluster(this.redis) ? '1' : '0',
    ];
    if (c.append) {
      keys.push(c.append.key);
      args.push(c.append.field, c.append.value, c.append.maxLength);
    }
    const command = c.append ? this.commandWithAppend : this.command;
    const [completed, receivers] = (await command(...keys, ...args)) as [number, number];
    return { completed: Number(completed) === 1, receivers: Number(receivers) };
  }

  /** What became of a job: finished (its record), still queued or running, or gone (never added, or expired). */
  async lookup(shard: number, jobId: string, entryId: string): Promise<JobState> {
    const [record, pending] = (await this.run(shard, jobId, 'lookup', entryId || '0-0')) as [string | null, number];
    if (record) return { kind: 'finished', job: JSON.parse(record) as FinishedJob };
    return pending > 0 ? { kind: 'pending' } : { kind: 'gone' };
  }

  /** Rebuilds the shard's count from its stream; returns it. */
  async reconcile(shard: number): Promise<number> {
    return Number(await this.run(shard, '-', 'reconcile'));
  }

  /** The shard's measured drain rate (items per second; undefined until measured) and its item count. */
  async drainRate(shard: number): Promise<{ perSecond: number | undefined; items: number }> {
    const [rate, items] = (await this.run(shard, '-', 'rate')) as [number, number];
    return { perSecond: rate < 0 ? undefined : rate / 1000, items: Number(items) };
  }

  /** Items waiting or running in a shard. */
  async depth(shard: number): Promise<number> {
    return Number((await this.redis.hget(this.names.meter(shard), 'count')) ?? 0);
  }

  /** Makes the shard's consumer group (and stream) unless it exists. */
  async ensureGroup(shard: number): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.names.jobs(shard), GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (redisReplyCode(err) !== 'BUSYGROUP') throw err;
    }
  }
}
