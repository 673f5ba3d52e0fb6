// Signing activity that survives the crash of any one process. A job's activity is appended to a Redis
// stream (one MULTI of XADDs) before its answer leaves the worker; every workers process drains the
// stream into PostgreSQL as a member of one consumer group (XREADGROUP), acknowledging and deleting
// entries only once their rows are committed, and takes over the entries a dead member had read but not
// acknowledged (XAUTOCLAIM past ACTIVITY_CLAIM_IDLE_MS). A crash between the commit and the
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
import type { ActivityEntry, ActivitySink } from './activity.js';
import { isRefusal, writeActivityRows } from './activity-writer.js';

export function activityStreamKey(prefix: string): string {
  return `${prefix}:{activity}:stream`;
}

const GROUP = 'activity-writers';
/** The stream's bound (approximate trim) while PostgreSQL is away: about 150 bytes an entry. */
const MAX_LENGTH = 1_000_000;
const BATCH = 1000;
/** After a partial batch, how long entries gather before the next read: fewer, larger transactions. */
const GATHER_MS = 250;

type Fields = string[];

function toFields(e: ActivityEntry, at: number): Fields {
  const f = ['a', e.authorizationId, 'm', e.method, 'd', e.door, 't', String(at)];
  if (e.kind !== undefined) f.push('k', String(e.kind));
  if (e.eventId !== undefined) f.push('e', e.eventId);
  return f;
}

function toRow(fields: Fields): ActivityRow | undefined {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i]!, fields[i + 1]!);
  const [a, method, door, t] = [m.get('a'), m.get('m'), m.get('d'), Number(m.get('t'))];
  if (!a || !method || (door !== 'http' && door !== 'nip46') || !Number.isFinite(t)) return undefined;
  const kind = m.has('k') ? Number(m.get('k')) : undefined;
  return { authorizationId: a, method: method as RpcMethod, door, at: new Date(t), kind, eventId: m.get('e') };
}

/**
 * The workers' ActivitySink: entries gather in memory until the job that recorded them calls persist(),
 * which appends them to the stream. While Redis refuses, they go to `fallback` (the in-memory writer).
 */
export class ActivityStream implements ActivitySink {
  private pending: Fields[] = [];
  private readonly writes = new Set<Promise<void>>();

  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
    private readonly fallback: ActivitySink,
    private readonly logger: Logger,
  ) {}

  record(e: ActivityEntry): void {
    this.pending.push(toFields(e, Date.now()));
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

  private async append(batch: Fields[]): Promise<void> {
    const multi = this.redis.multi();
    for (const f of batch) multi.xadd(this.key, 'MAXLEN', '~', MAX_LENGTH, '*', ...f);
    try {
      const replies = await multi.exec();
      if (!replies || replies.some(([err]) => err)) throw new Error('activity append refused');
    } catch (err) {
      this.logger.warn(
        { err: (err as Error).message, entries: batch.length },
        'activity stream append failed; kept in memory',
      );
      for (const f of batch) {
        const row = toRow(f);
        if (row) this.fallback.record(row as ActivityEntry);
      }
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
      const row = toRow(fields);
      if (row) rows.push(row);
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
