// Signing activity is written in batches, off the hot path: entries gather in memory and are flushed
// about once a second as one insert plus one counter update per authorization. While PostgreSQL is down
// requests still succeed: entries wait in memory (up to MAX_BUFFER, the oldest dropped past it) and are
// written when it is back. A row the database refuses for what it holds (its authorization was deleted,
// a value out of range) is dropped alone, with a log line: the batch around it is written without it.
// Every entry dropped unwritten is counted in keyfarm_activity_dropped_total{reason}.
import { Gauge } from 'prom-client';
import { inTransaction, type Db } from '../database/pool.js';
import { insertActivity, type ActivityRow } from '../database/queries/activity.js';
import { addActivity } from '../database/queries/authorizations.js';
import type { Logger } from '../shared/logger.js';
import { metrics, registry } from '../shared/metrics.js';
import type { ActivityEntry, ActivitySink } from './activity.js';

const MAX_BUFFER = 50_000;
/** Dropped at once when the buffer is full, so a long outage costs one splice per 5,000 entries. */
const DROP_CHUNK = 5_000;

/** Why entries were dropped: the buffer filled during an outage, the database refused them, or shutdown came first. */
type DropReason = 'buffer_full' | 'refused' | 'shutdown';

const dropped = metrics.activityDropped;
const pending = new Gauge({
  name: 'keyfarm_activity_pending',
  help: 'Activity entries waiting to be written',
  registers: [registry],
});

/**
 * SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation): the rows themselves are
 * refused, and writing them again will not help. Anything else (connection lost, timeout, shutdown,
 * serialization) may pass on a later try.
 */
export function isRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

function groupByAuthorization(rows: ActivityRow[]): ActivityRow[][] {
  const groups = new Map<string, ActivityRow[]>();
  for (const r of rows) {
    const g = groups.get(r.authorizationId);
    if (g) g.push(r);
    else groups.set(r.authorizationId, [r]);
  }
  return [...groups.values()];
}

/** One transaction: a write cut short by an outage is retried whole, never half-written twice. */
export async function writeActivityRows(db: Db, rows: ActivityRow[]): Promise<void> {
  const counts = new Map<string, { count: number; last: Date }>();
  for (const r of rows) {
    const c = counts.get(r.authorizationId) ?? { count: 0, last: r.at };
    c.count++;
    if (r.at > c.last) c.last = r.at;
    counts.set(r.authorizationId, c);
  }
  await inTransaction(db, async (tx) => {
    await insertActivity(tx, rows);
    await addActivity(tx, counts);
  });
}

export class ActivityWriter implements ActivitySink {
  private buffer: ActivityRow[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  record(e: ActivityEntry): void {
    // Activity is a record for the user, not a ledger: under a long database outage the oldest is dropped.
    if (this.buffer.length >= MAX_BUFFER) this.drop(this.buffer.length - MAX_BUFFER + DROP_CHUNK);
    this.buffer.push({ ...e, at: new Date() });
    pending.set(this.buffer.length);
  }

  /** Entries waiting to be written. */
  get waiting(): number {
    return this.buffer.length;
  }

  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write());
    return this.flushing;
  }

  private async write(): Promise<void> {
    if (this.buffer.length === 0) return;
    const rows = this.buffer;
    this.buffer = [];
    try {
      await this.writeRows(rows);
    } catch (err) {
      if (isRefusal(err)) await this.writeApart(rows);
      else this.retryLater(rows, err);
    }
    pending.set(this.buffer.length);
  }

  private writeRows(rows: ActivityRow[]): Promise<void> {
    return writeActivityRows(this.db, rows);
  }

  /**
   * A batch the database refused: each authorization's rows are written on their own, and the rows of
   * one refused in turn are tried one by one, so only the rows refused themselves are dropped. A group
   * refused for its foreign key (the authorization is gone) is dropped whole: every row in it names it.
   */
  private async writeApart(rows: ActivityRow[]): Promise<void> {
    const groups = groupByAuthorization(rows);
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g]!;
      try {
        await this.writeRows(group);
        continue;
      } catch (err) {
        if (!isRefusal(err)) return this.retryLater(groups.slice(g).flat(), err);
        if (group.length === 1 || (err as { code?: string }).code === '23503') {
          this.refuse(group, err);
          continue;
        }
      }
      for (let i = 0; i < group.length; i++) {
        try {
          await this.writeRows([group[i]!]);
        } catch (err) {
          if (!isRefusal(err)) return this.retryLater([...group.slice(i), ...groups.slice(g + 1).flat()], err);
          this.refuse([group[i]!], err);
        }
      }
    }
  }

  /** Puts rows back in front of what arrived meanwhile, within the buffer's bound. */
  private retryLater(rows: ActivityRow[], err: unknown): void {
    this.logger.warn({ err: (err as Error).message, rows: rows.length }, 'activity flush failed; will retry');
    this.buffer = rows.concat(this.buffer);
    if (this.buffer.length > MAX_BUFFER) this.drop(this.buffer.length - MAX_BUFFER);
  }

  private refuse(rows: ActivityRow[], err: unknown): void {
    const e = err as { code?: string; message?: string };
    const first = rows[0]!;
    this.logger.warn(
      {
        authorizationId: first.authorizationId,
        method: first.method,
        door: first.door,
        rows: rows.length,
        code: e.code,
        err: e.message,
      },
      'activity rows refused by the database; dropped',
    );
    dropped.inc({ reason: 'refused' }, rows.length);
  }

  private drop(n: number, reason: DropReason = 'buffer_full'): void {
    this.buffer.splice(0, n);
    dropped.inc({ reason }, n);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
    if (this.buffer.length > 0) {
      this.logger.warn({ rows: this.buffer.length }, 'activity not written at shutdown; dropped');
      this.drop(this.buffer.length, 'shutdown');
      pending.set(0);
    }
  }
}
