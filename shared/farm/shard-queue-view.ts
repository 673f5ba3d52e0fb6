// A read-only view of one shard's queue, for the operators' board (dashboards/bull-board.ts). The layout is
// the shard queue's (P = ShardNames.queuePrefix): the stream `P:jobs`, one entry per job waiting or running,
// read by the consumer group `workers`; `P:job:<id>`, a finished job's record (JSON, with `failedReason`
// when it failed for good), kept a while after it finished.
// - waiting: the entries after the group's last-delivered id; active: the entries of the group's PEL;
//   completed / failed: the finished records without / with `failedReason`.
// - Reads are bounded: a page of waiting or active jobs reads no more than the page's end from the stream
//   (which holds at most QUEUE_LIMIT entries); a page of finished jobs walks the record names (SCAN on the
//   node holding the shard) and classifies them in Redis, reading only the page's records. Finished jobs
//   come in SCAN order, not by time: the records carry no index to sort them by.
// All stream reads run in one read-only script a call (shard-queue-view.lua), so a page is one consistent
// look at the stream.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { isCluster, luaCommand, type RedisClient, untilReady } from '../redis.js';
import { clusterSlot, type ShardNames } from '../shard.js';
import { decodeJobData } from './job-data.js';
import { GROUP } from './shard-queue.js';

const LUA = readFileSync(new URL('./shard-queue-view.lua', import.meta.url), 'utf8');
const COMMAND = 'keyfarmShardQueueView';

/** The consumer group of every shard's stream. */

export type ShardJobStatus = 'waiting' | 'active' | 'completed' | 'failed';

export const SHARD_JOB_STATUSES: readonly ShardJobStatus[] = ['active', 'waiting', 'completed', 'failed'];

export type ShardJobCounts = Record<ShardJobStatus, number>;

/** One job as the board shows it, whatever its status. */
export interface ShardJob {
  /** Keyfarm's job id (the stream entry's `id` field, the record's key suffix). */
  id: string;
  status: ShardJobStatus;
  /** `rpc` or `nip46`. */
  type: string;
  /** Requests the job carries (what admission counted). */
  items: number;
  /** The job's JobData as added (sealed fields still sealed). */
  data: unknown;
  /** When it was added, ms. */
  addedAt: number;
  processedOn?: number;
  finishedOn?: number;
  /** Attempts made: a finished job's count; 0 while it is queued or running. */
  attempts: number;
  /** Times the group delivered it (active jobs): more than 1 after a worker died holding it. */
  deliveries?: number;
  /** The worker member holding it (active jobs). */
  consumer?: string;
  failedReason?: string;
  /** What the worker replied (finished jobs): a ReplyMessage or SealedReplyMessage. */
  reply?: unknown;
}

/** Shown in place of a finished record, or a stream entry's data, that is not JSON (never shown raw). */
export const UNREADABLE_RECORD = '[unreadable finished record]';
export const UNREADABLE_DATA = '[unreadable job data]';

/** Longest job id looked up; Keyfarm's ids are far shorter. */
const MAX_JOB_ID_LENGTH = 256;
/** Most jobs one page returns, whatever the caller asks (Bull Board asks for 300 at most). */
export const MAX_PAGE_SIZE = 1000;
/** Finished records classified per script call. */
const CLASSIFY_BATCH = 500;

type StreamEntry = [id: string, fields: string[]];
interface ClassifiedRecord {
  key: string;
  status: 'completed' | 'failed';
}
type ViewCommand = (key: string, ...args: (string | number)[]) => Promise<unknown>;

/** A Keyfarm job id: non-empty, bounded, no `:` (a key separator) and no control characters. */
export function isJobId(id: unknown): id is string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses.
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_JOB_ID_LENGTH && !/[:\x00-\x1f\x7f]/.test(id);
}

/** `text` with Redis glob's special characters escaped, to match it literally in SCAN MATCH. */
function globLiteral(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/** Completed or failed, by the same rule as the script's classify: the record's own `failedReason`. */
function finishedStatusOf(record: unknown, text: string): 'completed' | 'failed' {
  if (!text.includes('"failedReason":')) return 'completed';
  return record !== null &&
    typeof record === 'object' &&
    typeof (record as { failedReason?: unknown }).failedReason === 'string'
    ? 'failed'
    : 'completed';
}

/** An entry's data as the ingress made it (job-data.ts: an RPC job's items as objects again). */
function parseJobData(text: string | undefined): { ok: true; value: unknown } | { ok: false } {
  if (text === undefined) return { ok: false };
  try {
    return { ok: true, value: decodeJobData(text) };
  } catch {
    return { ok: false };
  }
}

function parseJson(text: string | undefined): { ok: true; value: unknown } | { ok: false } {
  if (text === undefined) return { ok: false };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

const numberOr = (value: unknown, fallback: number): number => {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
  return Number.isFinite(n) ? n : fallback;
};
const optionalNumber = (value: unknown): number | undefined => {
  const n = numberOr(value, Number.NaN);
  return Number.isNaN(n) ? undefined : n;
};

function fieldsOf(flat: string[]): Map<string, string> {
  const fields = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) if (!fields.has(flat[i]!)) fields.set(flat[i]!, flat[i + 1]!);
  return fields;
}

/** A stream entry as a job: fields id, type, items, data (JobData JSON), at (ms added). */
function jobOfEntry(
  [streamId, flat]: StreamEntry,
  status: 'waiting' | 'active',
  holder?: { consumer: string; deliveries: number },
): ShardJob {
  const fields = fieldsOf(flat);
  const data = parseJobData(fields.get('data'));
  return {
    id: fields.get('id') ?? streamId,
    status,
    type: fields.get('type') ?? 'unknown',
    items: numberOr(fields.get('items'), 0),
    data: data.ok ? data.value : UNREADABLE_DATA,
    addedAt: numberOr(fields.get('at'), numberOr(streamId.split('-')[0], 0)),
    attempts: 0,
    ...(holder ? { consumer: holder.consumer, deliveries: holder.deliveries } : {}),
  };
}

/** A finished record as a job. */
function jobOfRecord(id: string, text: string): ShardJob {
  const parsed = parseJson(text);
  if (!parsed.ok || parsed.value === null || typeof parsed.value !== 'object') {
    return {
      id,
      status: finishedStatusOf(undefined, text),
      type: 'unknown',
      items: 0,
      data: UNREADABLE_RECORD,
      addedAt: 0,
      attempts: 0,
    };
  }
  const r = parsed.value as Record<string, unknown>;
  const status = finishedStatusOf(r, text);
  return {
    id,
    status,
    type: typeof r.type === 'string' ? r.type : 'unknown',
    items: numberOr(r.items, 0),
    data: r.data ?? null,
    addedAt: numberOr(r.addedAt, 0),
    processedOn: optionalNumber(r.processedOn),
    finishedOn: optionalNumber(r.finishedOn),
    attempts: numberOr(r.attempts, 0),
    ...(status === 'failed' ? { failedReason: r.failedReason as string } : {}),
    reply: r.reply ?? null,
  };
}

export interface ShardQueueViewOptions {
  /** SCAN's COUNT hint while walking the finished records. */
  scanCount?: number;
}

export class ShardQueueView {
  /** The stream of jobs waiting or running. */
  readonly streamKey: string;
  private readonly recordPrefix: string;
  private readonly recordPattern: string;
  /** The cluster slot of every key of the shard. */
  private readonly slot: number;
  private readonly scanCount: number;
  private readonly command: ViewCommand;

  constructor(
    private readonly redis: RedisClient,
    names: ShardNames,
    shard: number,
    opts: ShardQueueViewOptions = {},
  ) {
    this.streamKey = names.jobs(shard);
    this.recordPrefix = names.job(shard, '');
    this.recordPattern = `${globLiteral(this.recordPrefix)}*`;
    this.slot = clusterSlot(names.tag(shard));
    this.scanCount = opts.scanCount ?? 1000;
    // One declared key: an auto-pipelining cluster client groups a call by its first argument's slot.
    this.command = luaCommand<ViewCommand>(redis, COMMAND, 1, LUA);
  }

  /** The key of a finished job's record. */
  recordKey(jobId: string): string {
    return `${this.recordPrefix}${jobId}`;
  }

  private run(op: string, ...args: (string | number)[]): Promise<unknown> {
    return this.command(this.streamKey, op, GROUP, ...args);
  }

  /** Jobs per status. Counting the finished ones walks every record name of the shard. */
  async counts(): Promise<ShardJobCounts> {
    const [[waiting, active], finished] = await Promise.all([
      this.run('counts') as Promise<[number, number]>,
      this.countFinished(),
    ]);
    return { waiting: Number(waiting), active: Number(active), ...finished };
  }

  /**
   * Jobs of one status, from `start` to `end` inclusive (0-based, as Bull Board pages): waiting and active
   * ones in the order they run, finished ones in no particular order. At most MAX_PAGE_SIZE of them.
   */
  async jobs(status: ShardJobStatus, start: number, end: number): Promise<ShardJob[]> {
    const first = Math.max(0, Math.floor(numberOr(start, 0)));
    const last = Math.min(Math.floor(numberOr(end, -1)), first + MAX_PAGE_SIZE - 1);
    if (last < first) return [];
    const upTo = last + 1;
    switch (status) {
      case 'waiting': {
        const entries = (await this.run('waiting', upTo)) as StreamEntry[];
        return entries.slice(first).map((e) => jobOfEntry(e, 'waiting'));
      }
      case 'active': {
        const pending = (await this.run('active', upTo)) as [StreamEntry | null, string, number, number][];
        return pending
          .slice(first)
          .flatMap(([entry, consumer, , deliveries]) =>
            entry ? [jobOfEntry(entry, 'active', { consumer, deliveries: Number(deliveries) })] : [],
          );
      }
      case 'completed':
      case 'failed':
        return this.finishedPage(status, first, upTo);
      default:
        return [];
    }
  }

  /** One job by its id: its finished record, else its stream entry; undefined when neither exists. */
  async job(jobId: string): Promise<ShardJob | undefined> {
    if (!isJobId(jobId)) return undefined;
    const text = await this.redis.get(this.recordKey(jobId));
    if (text !== null) return jobOfRecord(jobId, text);
    const found = (await this.run('find', jobId)) as [StreamEntry, string | null, number] | null;
    if (!found) return undefined;
    const [entry, consumer, deliveries] = found;
    return consumer
      ? jobOfEntry(entry, 'active', { consumer, deliveries: Number(deliveries) })
      : jobOfEntry(entry, 'waiting');
  }

  /** Every finished job of a status, a batch at a time (their records read): for a clean-up. */
  async *finishedJobs(status: 'completed' | 'failed'): AsyncGenerator<ShardJob[]> {
    for await (const batch of this.classifiedRecords()) {
      const keys = batch.filter((r) => r.status === status).map((r) => r.key);
      if (keys.length > 0) yield await this.readRecords(keys);
    }
  }

  /** INFO of the Redis server holding the shard (on a cluster: the master of its slot). */
  async redisInfo(): Promise<string> {
    const [node] = await this.shardNodes();
    return (node ?? (this.redis as Redis)).info();
  }

  /**
   * The servers to walk for the shard's records: the single server; on a cluster, the master holding the
   * shard's slot (every master while the slot map is not known).
   */
  private async shardNodes(): Promise<Redis[]> {
    if (!isCluster(this.redis)) return [this.redis];
    await untilReady(this.redis);
    const masters = this.redis.nodes('master');
    const owner = this.redis.slots[this.slot]?.[0];
    const node = masters.find((n) => `${n.options.host}:${n.options.port}` === owner);
    return node ? [node] : masters;
  }

  /** The names of the shard's finished records, a SCAN batch at a time, each once. */
  private async *recordKeys(): AsyncGenerator<string[]> {
    const seen = new Set<string>();
    for (const node of await this.shardNodes()) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', this.recordPattern, 'COUNT', this.scanCount);
        cursor = next;
        const fresh = keys.filter(
          (k) => k.startsWith(this.recordPrefix) && isJobId(k.slice(this.recordPrefix.length)) && !seen.has(k),
        );
        for (const k of fresh) seen.add(k);
        if (fresh.length > 0) yield fresh;
      } while (cursor !== '0');
    }
  }

  /** The shard's finished records with their status, classified in Redis (their values stay there). */
  private async *classifiedRecords(): AsyncGenerator<ClassifiedRecord[]> {
    for await (const keys of this.recordKeys()) {
      for (let i = 0; i < keys.length; i += CLASSIFY_BATCH) {
        const chunk = keys.slice(i, i + CLASSIFY_BATCH);
        const [firstKey, ...otherKeys] = chunk;
        const codes = (await this.command(firstKey!, 'classify', ...otherKeys)) as number[];
        const classified: ClassifiedRecord[] = [];
        chunk.forEach((key, j) => {
          if (codes[j] === 1) classified.push({ key, status: 'completed' });
          else if (codes[j] === 2) classified.push({ key, status: 'failed' });
        });
        yield classified;
      }
    }
  }

  private async countFinished(): Promise<{ completed: number; failed: number }> {
    const counts = { completed: 0, failed: 0 };
    for await (const batch of this.classifiedRecords()) for (const r of batch) counts[r.status]++;
    return counts;
  }

  /** Records `first` to `upTo - 1` of a status: names walked until the page is full, then its records read. */
  private async finishedPage(status: 'completed' | 'failed', first: number, upTo: number): Promise<ShardJob[]> {
    const keys: string[] = [];
    for await (const batch of this.classifiedRecords()) {
      for (const r of batch) if (r.status === status) keys.push(r.key);
      if (keys.length >= upTo) break;
    }
    const page = keys.slice(first, upTo);
    // A record that expired since, or no longer has the status asked for, is left out.
    return (await this.readRecords(page)).filter((job) => job.status === status);
  }

  /** The records of `keys` that still exist. */
  private async readRecords(keys: string[]): Promise<ShardJob[]> {
    const texts = await Promise.all(keys.map((k) => this.redis.get(k)));
    return keys.flatMap((key, i) => {
      const text = texts[i];
      return text == null ? [] : [jobOfRecord(key.slice(this.recordPrefix.length), text)];
    });
  }
}
