// Bull Board over every shard queue of the farm. The api mounts it (api/routes/admin.ts) behind the admin
// password. Each shard's queue (a Redis stream with a consumer group, and finished-job records: see
// shared/farm/shard-queue-view.ts) is shown through a Keyfarm adapter over a read-only view of it.
// In read-only mode the board shows queues and jobs but refuses every action. Writable, it offers only what
// the layout allows without breaking the shard's item count: removing finished jobs (one, or all of a
// status past a grace time). Everything that would touch a waiting or running job (retry, promote, add,
// empty, pause, edit) is refused with 405 and the reason.
// Sealed content (RPC calls and results, shared/farm/jobs.ts) is shown as "[sealed]", never as ciphertext.
import { createBullBoard } from '@bull-board/api';
import { BaseAdapter } from '@bull-board/api/dist/queueAdapters/base.js';
import type {
  AppJobScheduler,
  JobCleanStatus,
  JobCounts,
  JobSchedulerUpdateResult,
  JobState,
  JobStatus,
  ObliterateOptions,
  QueueJob,
  QueueJobJson,
  QueueJobOptions,
  QueueMetrics,
  Status,
} from '@bull-board/api/dist/types.js';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyPluginCallback } from 'fastify';
import { isSealed } from '../shared/farm/payload-seal.js';
import {
  SHARD_JOB_STATUSES,
  type ShardJob,
  type ShardJobStatus,
  ShardQueueView,
} from '../shared/farm/shard-queue-view.js';
import type { RedisClient } from '../shared/redis.js';
import type { ShardNames } from '../shared/shard.js';

export const REDACTED = '[sealed]';

/** `value` with every sealed string in it replaced by REDACTED (a job's data or return value is plain JSON). */
export function redactSealed(value: unknown): unknown {
  if (isSealed(value)) return REDACTED;
  if (Array.isArray(value)) return value.map(redactSealed);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactSealed(v)]));
  }
  return value;
}

/**
 * A job's data as the board shows it. A finished RPC job's record keeps no calls (recordData in
 * shared/farm/shard-queue.ts): they are shown as sealed, like a queued job's.
 */
function shownData(job: ShardJob): unknown {
  const { data } = job;
  const finished = job.status === 'completed' || job.status === 'failed';
  if (!finished || job.type !== 'rpc' || data === null || typeof data !== 'object' || Array.isArray(data)) return data;
  return 'calls' in data ? data : { ...data, calls: REDACTED };
}

/** An action the board does not take on a shard queue; Bull Board answers it with this status and message. */
export class QueueActionRefused extends Error {
  readonly statusCode = 405;
  constructor(action: string, why: string) {
    super(`${action} refused: ${why}`);
    this.name = 'QueueActionRefused';
  }
}

const READ_ONLY = 'the queue dashboard is read-only (ADMIN_QUEUES_READ_ONLY)';
const QUEUED =
  "waiting and running jobs belong to the shard's workers: only they may change them, or the shard's item count would go wrong";
const NO_SUCH_STATE = "Keyfarm's shard queues have no paused, delayed or scheduled jobs";

const isShardStatus = (status: string): status is ShardJobStatus =>
  (SHARD_JOB_STATUSES as readonly string[]).includes(status);

/** A shard job as Bull Board's QueueJob. Only a finished one can be removed (its record deleted). */
class KeyfarmJob implements QueueJob {
  readonly opts = {};

  constructor(
    private readonly job: ShardJob,
    private readonly queue: KeyfarmQueueAdapter,
  ) {}

  toJSON(): QueueJobJson {
    const j = this.job;
    return {
      id: j.id,
      name: j.type,
      progress: 0,
      attemptsMade: j.attempts,
      timestamp: j.addedAt,
      processedOn: j.processedOn ?? null,
      finishedOn: j.finishedOn ?? null,
      processedBy: j.consumer ?? null,
      failedReason: j.failedReason ?? '',
      stacktrace: [],
      data: shownData(j),
      returnvalue: j.reply ?? null,
      opts: {},
      // Delivered again after its worker died holding it: BullMQ's stalled count.
      ...(j.deliveries && j.deliveries > 1 ? { stalledCounter: j.deliveries - 1 } : {}),
    };
  }

  async getState(): Promise<JobState> {
    return this.job.status;
  }

  remove(): Promise<void> {
    return this.queue.removeJob(this.job);
  }

  async promote(): Promise<void> {
    throw new QueueActionRefused('promote', NO_SUCH_STATE);
  }

  async retry(): Promise<void> {
    throw new QueueActionRefused('retry', 'a finished job is answered already; its caller sends the request again');
  }

  async updateData(): Promise<void> {
    throw new QueueActionRefused('editing a job', QUEUED);
  }
}

/** A Keyfarm shard queue for Bull Board, over a read-only view of its layout. */
export class KeyfarmQueueAdapter extends BaseAdapter {
  constructor(
    private readonly view: ShardQueueView,
    private readonly connection: RedisClient,
    private readonly name: string,
    readOnly: boolean,
  ) {
    // Bull Board's 'bull' type: no flows, no concurrency setting (BullMQ features this queue has not).
    super('bull', {
      readOnlyMode: readOnly,
      allowRetries: false,
      description: `Keyfarm shard queue (stream ${view.streamKey})`,
    });
  }

  getName(): string {
    return this.name;
  }

  getStatuses(): Status[] {
    return ['latest', ...SHARD_JOB_STATUSES];
  }

  getJobStatuses(): JobStatus[] {
    return [...SHARD_JOB_STATUSES];
  }

  async getJobCounts(): Promise<JobCounts> {
    return this.view.counts();
  }

  /** Each status's jobs from `start` to `end` (Bull Board's 'latest' asks for the first page of every status). */
  async getJobs(statuses: JobStatus[], start = 0, end = start + 9): Promise<QueueJob[]> {
    const pages = await Promise.all(statuses.filter(isShardStatus).map((s) => this.view.jobs(s, start, end)));
    return pages.flat().map((job) => new KeyfarmJob(job, this));
  }

  async getJob(id: string): Promise<QueueJob | undefined> {
    const job = await this.view.job(id);
    return job && new KeyfarmJob(job, this);
  }

  async getJobLogs(): Promise<string[]> {
    return [];
  }

  getMetrics(): Promise<QueueMetrics> {
    return Promise.reject(new Error('Keyfarm records queue metrics in Prometheus (/api/metrics), not in Redis'));
  }

  getRedisInfo(): Promise<string> {
    return this.view.redisInfo();
  }

  async isPaused(): Promise<boolean> {
    return false;
  }

  async getGlobalConcurrency(): Promise<number | null> {
    return null;
  }

  async getJobSchedulers(): Promise<Omit<AppJobScheduler, 'queueName'>[]> {
    return [];
  }

  async getJobSchedulersCount(): Promise<number> {
    return 0;
  }

  async removeJobScheduler(): Promise<boolean> {
    return false;
  }

  async updateJobScheduler(): Promise<JobSchedulerUpdateResult> {
    return 'not-found';
  }

  async runJobSchedulerNow(): Promise<'not-found'> {
    return 'not-found';
  }

  /** Deletes the records of the finished jobs of `status` that finished more than `graceTimeMs` ago. */
  async clean(status: JobCleanStatus, graceTimeMs: number): Promise<void> {
    this.refuseWhenReadOnly(`cleaning ${status} jobs`);
    if (status !== 'completed' && status !== 'failed') {
      throw new QueueActionRefused(`cleaning ${status} jobs`, status === 'delayed' ? NO_SUCH_STATE : QUEUED);
    }
    const before = Date.now() - Math.max(0, graceTimeMs);
    for await (const batch of this.view.finishedJobs(status)) {
      const old = batch.filter((job) => (job.finishedOn ?? 0) <= before).map((job) => this.view.recordKey(job.id));
      // One shard's keys share its hash tag: one slot, one DEL.
      if (old.length > 0) await this.connection.del(...old);
    }
  }

  /** Removes a finished job (its record); a waiting or running one is refused. */
  async removeJob(job: ShardJob): Promise<void> {
    this.refuseWhenReadOnly('removing a job');
    if (job.status !== 'completed' && job.status !== 'failed') throw new QueueActionRefused('removing a job', QUEUED);
    await this.connection.del(this.view.recordKey(job.id));
  }

  async addJob(_name: string, _data: unknown, _options: QueueJobOptions): Promise<QueueJob> {
    throw new QueueActionRefused('adding a job', 'jobs come only through the api and relay-ingest, which admit them');
  }

  async pause(): Promise<void> {
    throw new QueueActionRefused('pause', "a shard's queue cannot be paused: its worker takes every job");
  }

  async resume(): Promise<void> {
    throw new QueueActionRefused('resume', 'a shard queue is never paused');
  }

  async empty(): Promise<void> {
    throw new QueueActionRefused('emptying the queue', QUEUED);
  }

  async obliterate(_opts?: ObliterateOptions): Promise<void> {
    throw new QueueActionRefused('obliterating the queue', QUEUED);
  }

  async promoteAll(): Promise<void> {
    throw new QueueActionRefused('promote', NO_SUCH_STATE);
  }

  async setGlobalConcurrency(_concurrency: number): Promise<void> {
    throw new QueueActionRefused('setting the concurrency', 'it is a worker setting (JOB_CONCURRENCY)');
  }

  private refuseWhenReadOnly(action: string): void {
    if (this.readOnlyMode) throw new QueueActionRefused(action, READ_ONLY);
  }
}

function redactedAdapter(view: ShardQueueView, connection: RedisClient, name: string, readOnly: boolean) {
  const adapter = new KeyfarmQueueAdapter(view, connection, name, readOnly);
  adapter.setFormatter('data', redactSealed);
  adapter.setFormatter('returnValue', redactSealed);
  return adapter;
}

export interface ShardBoardOptions {
  names: ShardNames;
  shardCount: number;
  /** A command connection; the board reads the shard queues with it and (when writable) removes finished jobs. */
  connection: RedisClient;
  basePath: string;
  readOnly: boolean;
  links?: { text: string; url: string }[];
}

export interface ShardBoard {
  plugin: FastifyPluginCallback;
  queueNames: string[];
  close(): Promise<void>;
}

export function createShardBoard(o: ShardBoardOptions): ShardBoard {
  const adapters = Array.from({ length: o.shardCount }, (_, shard) =>
    redactedAdapter(new ShardQueueView(o.connection, o.names, shard), o.connection, o.names.queue(shard), o.readOnly),
  );
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(o.basePath);
  createBullBoard({
    queues: adapters,
    // @bull-board/fastify pins its own copy of @bull-board/api: same shape, separate type declarations.
    serverAdapter: serverAdapter as unknown as Parameters<typeof createBullBoard>[0]['serverAdapter'],
    options: {
      uiConfig: {
        boardTitle: o.readOnly ? 'Keyfarm · read-only' : 'Keyfarm',
        miscLinks: o.links ?? [],
        hideDocsLink: true,
      },
    },
  });
  return {
    plugin: serverAdapter.registerPlugin() as FastifyPluginCallback,
    queueNames: adapters.map((a) => a.getName()),
    // The views hold nothing of their own: the connection is the caller's.
    async close() {},
  };
}
