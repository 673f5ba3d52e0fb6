// Queue state for tests of the operators' board: jobs waiting, running and finished in one shard's queue,
// made the way the shard queue's three steps make them (enqueue by an ingress, a worker's read, complete),
// written straight in the queue's Redis layout (QUEUE-DESIGN: stream P:jobs with group `workers`, meter
// P:meter, finished records P:job:<id>). Each step is one function here, so tests can move to the queue's
// own enqueue / read / complete by changing these bodies alone.
import type { RedisClient } from '../../shared/redis.js';
import { redisReplyCode } from '../../shared/redis.js';
import { decodeJobData, encodeJobData } from '../../shared/farm/job-data.js';
import type { JobData } from '../../shared/farm/jobs.js';
import { GROUP, recordData } from '../../shared/farm/shard-queue.js';

export interface FixtureJob {
  /** Keyfarm's job id (no `:`). */
  id: string;
  type: 'rpc' | 'nip46';
  /** The JobData, stored as the ingress stores it (job-data.ts). */
  data: unknown;
  /** Items the job holds; default 1. */
  items?: number;
  /** When it was added, ms; default now. */
  addedAt?: number;
}

export interface TakenJob extends FixtureJob {
  /** The stream entry that carries it. */
  entryId: string;
}

export interface Finish {
  /** What the worker replied (a ReplyMessage or SealedReplyMessage). */
  reply: unknown;
  /** Set: the job failed for good, with this reason. */
  failedReason?: string;
  processedOn?: number;
  finishedOn?: number;
  attempts?: number;
  /** How long the record is kept; default 120 s. */
  keepSeconds?: number;
}

export class ShardQueueFixture {
  readonly stream: string;
  readonly meter: string;

  /** `prefix`: the shard's queue prefix (ShardNames.queuePrefix). */
  constructor(
    private readonly redis: RedisClient,
    readonly prefix: string,
  ) {
    this.stream = `${prefix}:jobs`;
    this.meter = `${prefix}:meter`;
  }

  recordKey(jobId: string): string {
    return `${this.prefix}:job:${jobId}`;
  }

  private async ensureGroup(): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.stream, GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (redisReplyCode(err) !== 'BUSYGROUP') throw err;
    }
  }

  /** Adds a waiting job as the ingress's enqueue does (entry fields in the layout's order); its entry id. */
  async enqueue(job: FixtureJob): Promise<string> {
    await this.ensureGroup();
    const items = job.items ?? 1;
    const [[, entryId]] = (await this.redis
      .multi()
      .xadd(
        this.stream,
        '*',
        'id',
        job.id,
        'type',
        job.type,
        'items',
        String(items),
        'data',
        encodeJobData(job.data as JobData),
        'at',
        String(job.addedAt ?? Date.now()),
      )
      .hincrby(this.meter, 'count', items)
      .exec()) as [[null, string], [null, number]];
    return entryId;
  }

  /** Takes up to `n` waiting jobs, oldest first, as worker member `consumer` reads them: they become active. */
  async take(consumer: string, n: number): Promise<TakenJob[]> {
    await this.ensureGroup();
    const read = (await this.redis.xreadgroup('GROUP', GROUP, consumer, 'COUNT', n, 'STREAMS', this.stream, '>')) as
      | [string, [string, string[]][]][]
      | null;
    return (read?.[0]?.[1] ?? []).map(([entryId, flat]) => {
      const f = new Map<string, string>();
      for (let i = 0; i + 1 < flat.length; i += 2) f.set(flat[i]!, flat[i + 1]!);
      return {
        entryId,
        id: f.get('id')!,
        type: f.get('type') as 'rpc' | 'nip46',
        items: Number(f.get('items')),
        data: decodeJobData(f.get('data')!),
        addedAt: Number(f.get('at')),
      };
    });
  }

  /** Finishes an active job as the worker's complete does: entry acked and deleted, count released, record set. */
  async complete(job: TakenJob, finish: Finish): Promise<void> {
    const now = Date.now();
    const record = {
      id: job.id,
      type: job.type,
      items: job.items ?? 1,
      // As the worker keeps it: an RPC job's sealed calls are not kept.
      data: recordData(JSON.stringify(job.data)),
      addedAt: job.addedAt ?? now,
      processedOn: finish.processedOn ?? now,
      finishedOn: finish.finishedOn ?? now,
      attempts: finish.attempts ?? 1,
      ...(finish.failedReason !== undefined ? { failedReason: finish.failedReason } : {}),
      reply: finish.reply,
    };
    await this.redis
      .multi()
      .xack(this.stream, GROUP, job.entryId)
      .xdel(this.stream, job.entryId)
      .hincrby(this.meter, 'count', -(job.items ?? 1))
      .set(this.recordKey(job.id), JSON.stringify(record), 'EX', finish.keepSeconds ?? 120)
      .exec();
  }

  /** The shard's item count as the meter holds it. */
  async count(): Promise<number> {
    return Number((await this.redis.hget(this.meter, 'count')) ?? 0);
  }

  /** Deletes the shard queue's keys this fixture made (records of the jobs named). */
  async clear(jobIds: string[] = []): Promise<void> {
    await Promise.all(
      [this.stream, this.meter, ...jobIds.map((id) => this.recordKey(id))].map((k) => this.redis.del(k)),
    );
  }
}
