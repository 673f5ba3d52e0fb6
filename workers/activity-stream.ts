// Signing activity that survives the crash of any one process. A job's activity is appended to a Redis
// stream (one XADD: one entry holding every row recorded since the last append, so one command per job,
// not per request) before its answer leaves the worker: on a single Redis in the job's completion script,
// which publishes the answer after it (take()); on a cluster, whose stream is in another slot, by an
// append awaited before the completion (persist()). Every workers process drains the stream into
// PostgreSQL as a member of one consumer group (XREADGROUP), acknowledging and deleting entries only once
// their rows are committed, and takes over the entries a dead member had read but not acknowledged
// (XAUTOCLAIM past ACTIVITY_CLAIM_IDLE_MS). A crash between the commit and the
// acknowledgement writes that batch twice: activity is at least once, never lost.
//
// The stream holds what the rows hold (authorization id, method, kind, event id, door, time), never
// content or secrets. Its key has one hash tag, so it lives in one cluster slot.
import { redisReplyCode, type RedisClient } from '../shared/redis.js';
import type { Db } from '../database/pool.js';
import type { ActivityRow } from '../database/queries/activity.js';
import type { RpcMethod } from '../shared/farm/jobs.js';
import type { Logger } from '../shared/logger.js';
import { metrics } from '../shared/metrics.js';
import type { ActivityBatch, ActivityEntry, ActivitySink } from './activity.js';
import { isRefusal, writeActivityRows } from './activity-writer.js';

export function activityStreamKey(prefix: string): string {
  return `${prefix}:{activity}:stream`;
}

const GROUP = 'activity-writers';
/**
 * The stream's bound in entries (approximate trim) while PostgreSQL is away. An entry is one job's rows
 * (about 100 bytes a row, up to 256 rows): 200,000 entries are 200,000 rows at one request a job and
 * about 1.7 million (170 MB) at the 8-9 of a busy farm.
 */
const MAX_LENGTH = 200_000;
/** Entries read at once: each holds a job's rows (at most a job's items, 256), so a transaction stays bounded. */
const BATCH = 200;
/** The field of an entry holding its rows: a JSON array of [authorization, method, door, at ms, kind, event id]. */
const ROWS_FIELD = 'rows';
/** After a partial batch, how long entries gather before the next read: fewer, larger transactions. */
const GATHER_MS = 250;

type Fields = string[];
/** One row as an entry packs it. */
type PackedRow = [
  authorizationId: string,
  method: string,
  door: string,
  at: number,
  kind: number | null,
  eventId: string | null,
];

function pack(e: ActivityEntry, at: number): PackedRow {
  return [e.authorizationId, e.method, e.door, at, e.kind ?? null, e.eventId ?? null];
}

function unpack(r: unknown): ActivityRow | undefined {
  if (!Array.isArray(r) || r.length !== 6) return undefined;
  const [a, method, door, t, kind, eventId] = r as unknown[];
  if (typeof a !== 'string' || !a || typeof method !== 'string' || !method) return undefined;
  if ((door !== 'http' && door !== 'nip46') || typeof t !== 'number' || !Number.isFinite(t)) return undefined;
  if (kind !== null && typeof kind !== 'number') return undefined;
  if (eventId !== null && typeof eventId !== 'string') return undefined;
  return {
    authorizationId: a,
    method: method as RpcMethod,
    door,
    at: new Date(t),
    kind: kind ?? undefined,
    eventId: eventId ?? undefined,
  };
}

/** The rows of an entry, or undefined when it is malformed. */
function toRows(fields: Fields): ActivityRow[] | undefined {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i]!, fields[i + 1]!);
  const packed = m.get(ROWS_FIELD);
  if (packed !== undefined) {
    let list: unknown;
    try {
      list = JSON.parse(packed);
    } catch {
      return undefined;
    }
    if (!Array.isArray(list)) return undefined;
    const rows = list.map(unpack);
    return rows.every((r) => r !== undefined) ? (rows as ActivityRow[]) : undefined;
  }
  // An entry of one row, field by field (written by an earlier version; read during an upgrade).
  const [a, method, door, t] = [m.get('a'), m.get('m'), m.get('d'), Number(m.get('t'))];
  if (!a || !method || (door !== 'http' && door !== 'nip46') || !Number.isFinite(t)) return undefined;
  const kind = m.has('k') ? Number(m.get('k')) : undefined;
  return [{ authorizationId: a, method: method as RpcMethod, door, at: new Date(t), kind, eventId: m.get('e') }];
}

/**
 * The workers' ActivitySink: entries gather in memory until the job that recorded them finishes, and the
 * shard worker appends them to the stream: with the job's completion (take()), or on their own (persist()).
 * While Redis refuses, they go to `fallback` (the in-memory writer).
 */
export class ActivityStream implements ActivitySink {
  private pending: PackedRow[] = [];
  private readonly writes = new Set<Promise<void>>();

  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
    private readonly fallback: ActivitySink,
    private readonly logger: Logger,
  ) {}

  record(e: ActivityEntry): void {
    this.pending.push(pack(e, Date.now()));
  }

  take(): ActivityBatch | undefined {
    if (this.pending.length === 0) return undefined;
    const batch = this.pending;
    this.pending = [];
    return {
      key: this.key,
      field: ROWS_FIELD,
      value: JSON.stringify(batch),
      maxLength: MAX_LENGTH,
      failed: () => this.toFallback(batch),
    };
  }

  /** Appends what was recorded so far, and waits for earlier appends still in flight. */
  async persist(): Promise<void> {
    const earlier = [...this.writes];
    if (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      const write = this.append(batch);
      this.writes.add(write);
      void write.finally(() => this.writes.delete(write));
      earlier.push(write);
    }
    await Promise.all(earlier);
  }

  private async append(batch: PackedRow[]): Promise<void> {
    try {
      await this.redis.xadd(this.key, 'MAXLEN', '~', MAX_LENGTH, '*', ROWS_FIELD, JSON.stringify(batch));
    } catch (err) {
      this.logger.warn(
        { err: (err as Error).message, entries: batch.length },
        'activity stream append failed; kept in memory',
      );
      this.toFallback(batch);
    }
  }

  private toFallback(batch: PackedRow[]): void {
    for (const r of batch) {
      const row = unpack(r);
      if (row) this.fallback.record(row as ActivityEntry);
    }
  }
}

export interface ActivityDrainOptions {
  db: Db;
  /** A connection of its own: reads block on it. */
  redis: RedisClient;
  key: string;
  /** This process's name in the consumer group. */
  consumer: string;
  /** How long an entry read by a member may stay unacknowledged before another member takes it over. */
  claimIdleMs: number;
  logger: Logger;
  /** How long one read waits for new entries (and so the longest stop() waits); default 250 ms. */
  blockMs?: number;
}

/** Drains the activity stream into PostgreSQL, as one member of the consumer group. */
export class ActivityDrain {
  private stopped = false;
  private running: Promise<void> | undefined;
  private nextClaimAt = 0;

  constructor(private readonly opts: ActivityDrainOptions) {}

  async start(): Promise<void> {
    await this.ensureGroup();
    this.running = this.loop();
  }

  /** Finishes the batch in hand (its rows committed and acknowledged), then stops reading. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  private async ensureGroup(): Promise<void> {
    try {
      await this.opts.redis.xgroup('CREATE', this.opts.key, GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (redisReplyCode(err) !== 'BUSYGROUP') throw err;
    }
  }

  private async loop(): Promise<void> {
    const { logger } = this.opts;
    while (!this.stopped) {
      try {
        const entries = await this.next();
        if (entries.length > 0) await this.write(entries);
        if (entries.length > 0 && entries.length < BATCH && !this.stopped)
          await new Promise((r) => setTimeout(r, GATHER_MS));
      } catch (err) {
        const message = (err as Error).message;
        if (redisReplyCode(err) === 'NOGROUP') await this.ensureGroup().catch(() => undefined);
        if (this.stopped) break;
        logger.warn({ err: message }, 'draining signing activity failed; will retry');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** This member's own unacknowledged entries first, then a dead member's, then new ones. */
  private async next(): Promise<[string, Fields][]> {
    const { redis, key, consumer } = this.opts;
    const own = await this.read('0', 0);
    if (own.length > 0) return own;
    if (Date.now() >= this.nextClaimAt) {
      this.nextClaimAt = Date.now() + Math.max(250, Math.floor(this.opts.claimIdleMs / 2));
      const [, claimed] = (await redis.xautoclaim(
        key,
        GROUP,
        consumer,
        this.opts.claimIdleMs,
        '0-0',
        'COUNT',
        BATCH,
      )) as [string, [string, Fields][]];
      const live = claimed.filter((e) => e?.[1]);
      if (live.length > 0) return live;
    }
    return this.read('>', this.opts.blockMs ?? 250);
  }

  private async read(from: string, blockMs: number): Promise<[string, Fields][]> {
    const { redis, key, consumer } = this.opts;
    const args: (string | number)[] = ['GROUP', GROUP, consumer, 'COUNT', BATCH];
    if (blockMs > 0) args.push('BLOCK', blockMs);
    const res = (await (redis.xreadgroup as (...a: (string | number)[]) => Promise<unknown>)(
      ...args,
      'STREAMS',
      key,
      from,
    )) as [string, [string, Fields | null][]][] | null;
    return (res?.[0]?.[1] ?? []).filter((e): e is [string, Fields] => e[1] !== null);
  }

  /** Commits the rows, then acknowledges and deletes their entries. A transient failure leaves them pending. */
  private async write(entries: [string, Fields][]): Promise<void> {
    const { db, redis, key, logger } = this.opts;
    const rows: ActivityRow[] = [];
    const done: string[] = [];
    for (const [id, fields] of entries) {
      const packed = toRows(fields);
      if (packed) rows.push(...packed);
      else logger.warn({ entry: id }, 'malformed activity stream entry; dropped');
      done.push(id);
    }
    try {
      await writeActivityRows(db, rows);
    } catch (err) {
      if (!isRefusal(err)) throw err;
      // Only the rows refused themselves are dropped (their authorization deleted, a value out of range).
      for (const row of rows) {
        try {
          await writeActivityRows(db, [row]);
        } catch (rowErr) {
          if (!isRefusal(rowErr)) throw rowErr;
          logger.warn(
            { authorizationId: row.authorizationId, method: row.method, code: (rowErr as { code?: string }).code },
            'activity row refused by the database; dropped',
          );
          metrics.activityDropped.inc({ reason: 'refused' });
        }
      }
    }
    await redis
      .multi()
      .xack(key, GROUP, ...done)
      .xdel(key, ...done)
      .exec();
  }
}
