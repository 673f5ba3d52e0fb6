// The BullMQ Worker of one owned shard. Several jobs run at once so the crypto pool stays busy; a job's
// items go back to the shard's admission count when it completes or finally fails. A job held by a killed
// worker is re-run by the stalled check once its lock (JOB_LOCK_MS) runs out.
import { setTimeout as delay } from 'node:timers/promises';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { RedisClient } from '../shared/redis.js';
import type { Admission } from '../shared/farm/admission.js';
import type { JobData, ReplyMessage, SealedReplyMessage } from '../shared/farm/jobs.js';
import type { Logger } from '../shared/logger.js';
import type { ShardNames } from '../shared/shard.js';
import type { Nip46Processor } from './nip46-processor.js';
import { publishReply } from '../shared/farm/replies.js';
import type { RpcProcessor } from './rpc-processor.js';
import { failedReply } from './shard-job.js';

/** A NIP-46 job's reply, or an RPC job's (sealed). */
type Reply = ReplyMessage | SealedReplyMessage;

export interface ShardWorkerOptions {
  shard: number;
  names: ShardNames;
  /** Shared by the shard Workers of a process; needs maxRetriesPerRequest: null (createBullConnection). */
  connection: RedisClient;
  /** Command connection for replies and admission. */
  publisher: RedisClient;
  admission: Admission;
  processor: RpcProcessor;
  /** Runs 'nip46' jobs; without it they fail as an unknown type. */
  nip46Processor?: Nip46Processor;
  logger: Logger;
  /** Jobs of this shard in flight at once. */
  concurrency: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxStalledCount: number;
}

/** Longest a close waits for the Worker's start-up checks. */
const READY_WAIT_MS = 1000;

export class ShardWorker {
  readonly shard: number;
  private readonly worker: Worker<JobData, Reply>;
  private readonly opts: ShardWorkerOptions;
  /** Settles once BullMQ's start-up checks (INFO on both connections) are done: true if they passed. */
  private readonly started: Promise<boolean>;

  constructor(opts: ShardWorkerOptions) {
    this.opts = opts;
    this.shard = opts.shard;
    const { names, shard, logger } = opts;
    this.worker = new Worker<JobData, Reply>(names.queue(shard), (job) => this.process(job), {
      connection: opts.connection,
      prefix: names.queuePrefix(shard),
      concurrency: opts.concurrency,
      lockDuration: opts.lockDurationMs,
      stalledInterval: opts.stalledIntervalMs,
      maxStalledCount: opts.maxStalledCount,
      // Waits for new jobs in short blocks so a close is quick.
      drainDelay: 1,
    });
    this.worker.on('completed', (job) => this.release(job));
    this.worker.on('failed', (job, err) => void this.onFailed(job, err));
    this.worker.on('stalled', (jobId) => logger.warn({ shard, jobId }, 'stalled job will run again'));
    this.worker.on('error', (err) => logger.warn({ shard, err: err.message }, 'shard worker error'));
    this.started = this.worker.waitUntilReady().then(
      () => true,
      () => false,
    );
  }

  /**
   * Stops taking jobs and waits for the running ones, or until `giveUp` settles (the shutdown's jobs
   * timeout): a job still running then is left to the stalled-job check, which runs it again on the
   * shard's next owner once its lock runs out.
   */
  async close(giveUp?: Promise<unknown>, { force = false } = {}): Promise<void> {
    // A Worker closed while BullMQ still checks its connections (INFO, at start) leaves that check's
    // rejection unhandled, and the process would die of it. A Redis Cluster connection (BullMQ makes a
    // new one for each Worker) can take longer than a moment to come up: past that moment, the close
    // happens in the background once the check is done.
    const started = await Promise.race([this.started.then(() => true), delay(READY_WAIT_MS).then(() => false)]);
    if (!started) {
      void this.started.then(() => this.worker.close(true)).catch(() => undefined);
      return;
    }
    const closed = this.worker.close(force).then(() => true);
    const finished = giveUp ? await Promise.race([closed, giveUp.then(() => false)]) : await closed;
    if (!finished)
      this.opts.logger.warn(
        { shard: this.shard },
        'jobs still running at shutdown; leaving them to be run again elsewhere',
      );
  }

  private async process(job: Job<JobData, Reply>): Promise<Reply> {
    if (job.data?.type === 'nip46' && this.opts.nip46Processor && Array.isArray(job.data.items)) {
      return this.opts.nip46Processor(job.id!, job.data);
    }
    if (job.data?.type !== 'rpc' || !Array.isArray(job.data.items)) throw new UnrecoverableError('unknown job type');
    return this.opts.processor(job.id!, job.data);
  }

  private release(job: Job<JobData, Reply>): void {
    this.opts.admission
      .release(this.shard, job.id!)
      .catch((err: Error) =>
        this.opts.logger.warn(
          { shard: this.shard, jobId: job.id, err: err.message },
          'releasing admitted items failed; reconcile will',
        ),
      );
  }

  private async onFailed(job: Job<JobData, Reply> | undefined, err: Error): Promise<void> {
    if (!job) return;
    const final = Boolean(job.finishedOn);
    this.opts.logger.error(
      {
        shard: this.shard,
        jobId: job.id,
        attempt: job.attemptsMade,
        final,
        err: err.message,
        traceIds: job.data?.items?.map((i) => i.traceId),
      },
      'rpc job failed',
    );
    if (!final) return;
    this.release(job);
    if (job.data && Array.isArray(job.data.items)) {
      const reply = failedReply(job.id!, job.data, 503, 'worker failed');
      await publishReply(this.opts.publisher, this.opts.names, job.data.replyTo, reply).catch(() => undefined);
    }
  }
}
