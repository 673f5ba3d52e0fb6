// The ingress side of the farm: puts requests on their shard's queue and waits for the answers.
// - Requests for one shard that arrive in one event-loop turn go as ONE job (a micro-batch).
// - Admission (per-shard item count) comes before the add; a full shard answers 503 at once.
// - Answers come back on ONE pub/sub subscription per process (this instance's reply channel), matched by
//   job id to the waiting calls. At the timeout the job's stored return value is read before giving up
//   with 504, so a lost pub/sub message costs latency, not the answer.
// - While Redis is unreachable a call answers 503 at once (a status check, no round trip): the command
//   connection has no offline queue, so nothing waits for Redis to come back; it reconnects by itself.
//   Calls in flight when the link drops are answered 503 at once too (their answer may never come).
// - A job's calls are sealed into it, and its results opened here, with the farm payload key (jobs.ts).
import { randomBytes } from 'node:crypto';
import { Job } from 'bullmq';
import type { RedisClient } from '../redis.js';
import type { Logger } from '../logger.js';
import { metrics } from '../metrics.js';
import { subscribeDirect } from '../pubsub.js';
import { closeRedis, connectFailFast, createRedis, isUp, onLinkLost, type RedisTarget } from '../redis.js';
import type { ShardNames } from '../shard.js';
import { Admission } from './admission.js';
import { ShardQueues } from './shard-queues.js';
import type { ItemResult, ReplyMessage, RpcJobData, RpcItem, SealedReplyMessage } from './jobs.js';
import { MicroBatcher } from './micro-batcher.js';
import type { PayloadSealer } from './payload-seal.js';
import { openReply, sealRpcJob } from './rpc-sealing.js';

export interface RpcClientOptions {
  redisUrl: RedisTarget;
  names: ShardNames;
  shardCount: number;
  /** Items a shard may hold (QUEUE_LIMIT). */
  queueLimit: number;
  /** How long a call waits for its answer before 504 (RPC_TIMEOUT_MS). */
  timeoutMs: number;
  /** Unique per process: replies for this process are published on names.replyChannel(instanceId). */
  instanceId: string;
  logger: Logger;
  /** Seals calls into jobs and opens their results: the farm payload key (loadPayloadSealer). */
  sealer: PayloadSealer;
  /** Label of the backpressure metric and of the jobs' activity; default 'http'. */
  door?: 'http' | 'nip46';
  /** Most items in one job; default 256. */
  maxBatch?: number;
  /** 0 (default): a job carries what arrived in one event-loop turn; > 0: what arrived within this many ms. */
  batchWindowMs?: number;
  /** Jobs of one shard in flight from this process before new requests wait to join the next (group commit); default 1. */
  maxInFlightPerShard?: number;
  /** Longest a batch waits for its shard's job in flight, in ms; default 250 (only a stalled job lasts that long). */
  batchHoldMaxMs?: number;
  /** Attempts of a job whose processing throws (stalled re-runs are counted apart); default 3. */
  jobAttempts?: number;
  /** Finished jobs are kept this long so a late reader finds the result; default 60. */
  keepFinishedSeconds?: number;
}

interface WaitingCall {
  item: RpcItem;
  resolve: (r: ItemResult) => void;
}

interface InFlightJob {
  shard: number;
  calls: WaitingCall[];
  timer: NodeJS.Timeout;
  /** Tells the batcher the shard's slot is free. */
  settle: () => void;
}

const fail = (id: string, status: number, error: string): ItemResult => ({ id, ok: false, status, error });

export class RpcClient {
  readonly door: 'http' | 'nip46';
  private readonly opts: RpcClientOptions;
  private readonly batcher: MicroBatcher<WaitingCall>;
  private readonly jobs = new Map<string, InFlightJob>();
  private queues: ShardQueues | undefined;
  private readonly jobIdBase: string;
  private seq = 0;
  private redis: RedisClient | undefined;
  private subscriber: RedisClient | undefined;
  private admission: Admission | undefined;
  private state: 'new' | 'started' | 'closed' = 'new';

  constructor(opts: RpcClientOptions) {
    this.opts = opts;
    this.door = opts.door ?? 'http';
    this.batcher = new MicroBatcher((shard, calls) => this.send(shard, calls), {
      maxBatch: opts.maxBatch ?? 256,
      windowMs: opts.batchWindowMs ?? 0,
      maxInFlight: opts.maxInFlightPerShard ?? 1,
      holdMaxMs: opts.batchHoldMaxMs ?? 250,
    });
    // Job ids must be unique across restarts of one instance id and may not contain ':'.
    this.jobIdBase = `${opts.instanceId.replace(/:/g, '_')}.${randomBytes(4).toString('hex')}`;
  }

  /** Connects and subscribes to this instance's reply channel; resolves once replies can arrive. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('RpcClient.start: already started');
    this.redis = await connectFailFast(this.opts.redisUrl, (err) => this.opts.logger.warn({ err: err.message }, 'rpc client redis error'));
    this.subscriber = createRedis(this.opts.redisUrl, { enableAutoPipelining: false });
    this.subscriber.on('error', (err) => this.opts.logger.warn({ err: err.message }, 'rpc client subscriber error'));
    this.admission = new Admission(this.redis, this.opts.names, { limit: this.opts.queueLimit });
    this.queues = new ShardQueues(this.redis, this.opts.names, (err, shard) => this.opts.logger.warn({ err: err.message, shard }, 'rpc client queue error'));
    onLinkLost(this.redis, () => this.failInFlight('queue unavailable'));
    await subscribeDirect(this.subscriber, this.opts.names.replyChannel(this.opts.instanceId), (message) => this.handleReply(message));
    // Every shard's Queue is made now: one made later while Redis is down would wait for it to come back.
    await Promise.all(Array.from({ length: this.opts.shardCount }, (_, shard) => this.queues!.get(shard).waitUntilReady()));
    this.state = 'started';
  }

  /** Runs one request on its shard and resolves with its result; never rejects for farm conditions (503/504 are results). */
  call(shard: number, item: RpcItem): Promise<ItemResult> {
    if (this.state !== 'started') return Promise.resolve(fail(item.id, 503, 'shutting down'));
    if (!Number.isInteger(shard) || shard < 0 || shard >= this.opts.shardCount) {
      throw new RangeError(`RpcClient.call: shard ${shard} is outside 0..${this.opts.shardCount - 1}`);
    }
    if (!this.connected) return Promise.resolve(fail(item.id, 503, 'queue unavailable'));
    return new Promise((resolve) => this.batcher.add(shard, { item, resolve }));
  }

  /** Both Redis links (commands and replies) are up. */
  get connected(): boolean {
    return isUp(this.redis) && isUp(this.subscriber);
  }

  /** Calls waiting for an answer (queued or in flight). */
  get waiting(): number {
    let n = this.batcher.pending;
    for (const j of this.jobs.values()) n += j.calls.length;
    return n;
  }

  /** Answers every waiting call with 503 and disconnects. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasStarted = this.state === 'started';
    this.state = 'closed';
    this.batcher.flushAll();
    this.failInFlight('shutting down');
    if (!wasStarted) return;
    await this.queues?.close();
    await Promise.all([closeRedis(this.subscriber), closeRedis(this.redis)]);
  }

  /** Answers every call whose job is out with 503 (a late reply is then ignored). */
  private failInFlight(error: string): void {
    for (const [jobId, job] of this.jobs) {
      clearTimeout(job.timer);
      this.jobs.delete(jobId);
      job.settle();
      for (const c of job.calls) c.resolve(fail(c.item.id, 503, error));
    }
  }

  /** A reply published by a worker. Protected so a test can drop replies and exercise the fallback read. */
  protected handleReply(message: string): void {
    let reply: Partial<SealedReplyMessage & ReplyMessage> | null;
    try {
      reply = JSON.parse(message) as Partial<SealedReplyMessage & ReplyMessage> | null;
    } catch {
      this.opts.logger.warn('rpc client: unreadable reply dropped');
      return;
    }
    const jobId = reply?.jobId;
    const job = typeof jobId === 'string' ? this.jobs.get(jobId) : undefined;
    if (!job || !jobId) return; // late (already answered 504) or not ours
    this.finish(jobId, job, this.resultsOf(jobId, job, reply!));
  }

  /** The results a reply carries; when they do not open (altered, another key), a 500 for each call. */
  private resultsOf(jobId: string, job: InFlightJob, reply: Partial<SealedReplyMessage & ReplyMessage>): ItemResult[] {
    try {
      return openReply(this.opts.sealer, reply);
    } catch (err) {
      this.opts.logger.error({ jobId, shard: job.shard, err: (err as Error).message }, 'a reply could not be opened');
      return job.calls.map((c) => fail(c.item.id, 500, 'reply could not be opened'));
    }
  }

  private async send(shard: number, batch: WaitingCall[]): Promise<void> {
    if (this.state !== 'started') {
      for (const c of batch) c.resolve(fail(c.item.id, 503, 'shutting down'));
      return;
    }
    const jobId = `${this.jobIdBase}.${++this.seq}`;
    const admission = this.admission!;
    let admitted: number;
    try {
      admitted = await admission.admit(shard, jobId, batch.length);
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message, shard, jobId }, 'admission failed');
      for (const c of batch) c.resolve(fail(c.item.id, 503, 'queue unavailable'));
      return;
    }
    // The shard had room for the first `admitted` calls: they make the job, the rest are refused now.
    const calls = batch.slice(0, admitted);
    const refused = batch.slice(admitted);
    if (refused.length > 0) {
      metrics.backpressureRejected.inc({ door: this.door }, refused.length);
      for (const c of refused) c.resolve(fail(c.item.id, 503, 'shard overloaded'));
    }
    if (calls.length === 0) return;
    // Registered before the add: a fast worker may reply before the add's own reply reaches us.
    const timer = setTimeout(() => void this.timeOut(jobId), this.opts.timeoutMs);
    let settle!: () => void;
    const answered = new Promise<void>((resolve) => (settle = resolve));
    const job: InFlightJob = { shard, calls, timer, settle };
    this.jobs.set(jobId, job);
    const data: RpcJobData = sealRpcJob(this.opts.sealer, jobId, this.opts.instanceId, this.door, calls.map((c) => c.item));
    const keep = { age: this.opts.keepFinishedSeconds ?? 60 };
    try {
      await this.queues!.get(shard).add('rpc', data, {
        jobId,
        attempts: this.opts.jobAttempts ?? 3,
        removeOnComplete: keep,
        removeOnFail: keep,
      });
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message, shard, jobId }, 'adding a job failed');
      admission.release(shard, jobId).catch(() => undefined);
      if (this.jobs.get(jobId) === job) {
        clearTimeout(timer);
        this.jobs.delete(jobId);
        for (const c of calls) c.resolve(fail(c.item.id, 503, 'queue unavailable'));
      }
      settle();
    }
    await answered;
  }

  private async timeOut(jobId: string): Promise<void> {
    const job = this.jobs.get(jobId);
    if (!job) return;
    let stored: ItemResult[] | undefined;
    let unreachable = false;
    try {
      const j = await Job.fromId<RpcJobData, SealedReplyMessage | ReplyMessage>(this.queues!.get(job.shard), jobId);
      if (j?.finishedOn && j.returnvalue) stored = this.resultsOf(jobId, job, j.returnvalue);
    } catch (err) {
      unreachable = true;
      this.opts.logger.warn({ err: (err as Error).message, jobId }, 'reading a job result failed');
    }
    if (this.jobs.get(jobId) !== job) return; // the reply arrived while we read
    this.finish(jobId, job, stored ?? [], unreachable);
  }

  /** Answers the calls of a job from `results`; a call without a result gets 504 (503 when Redis could not be read). */
  private finish(jobId: string, job: InFlightJob, results: ItemResult[], unreachable = false): void {
    clearTimeout(job.timer);
    this.jobs.delete(jobId);
    job.settle();
    const byId = new Map(results.map((r) => [r.id, r]));
    for (const c of job.calls) {
      const r = byId.get(c.item.id);
      if (r) {
        c.resolve(r);
      } else if (unreachable) {
        c.resolve(fail(c.item.id, 503, 'queue unavailable'));
      } else {
        metrics.rpcTimeouts.inc();
        this.opts.logger.warn({ traceId: c.item.traceId, jobId, shard: job.shard }, 'no answer in time');
        c.resolve(fail(c.item.id, 504, 'no answer in time'));
      }
    }
  }
}
