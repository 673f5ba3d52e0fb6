// Signing activity is written in batches, off the hot path: entries gather in memory and are flushed
// about once a second as one insert plus one counter update per authorization. While PostgreSQL is down
// requests still succeed: entries wait in memory (up to MAX_BUFFER, the oldest dropped past it and
// counted in keyfarm_activity_dropped_total) and are written when it is back.
import { Counter, Gauge } from 'prom-client';
import { inTransaction, type Db } from '../database/pool.js';
import { insertActivity, type ActivityRow } from '../database/queries/activity.js';
import { addActivity } from '../database/queries/authorizations.js';
import type { Logger } from '../shared/logger.js';
import { registry } from '../shared/metrics.js';
import type { ActivityEntry, ActivitySink } from './activity.js';

const MAX_BUFFER = 50_000;
/** Dropped at once when the buffer is full, so a long outage costs one splice per 5,000 entries. */
const DROP_CHUNK = 5_000;

const dropped = new Counter({
  name: 'keyfarm_activity_dropped_total',
  help: 'Activity entries dropped unwritten because the database stayed unreachable',
  registers: [registry],
});
const pending = new Gauge({ name: 'keyfarm_activity_pending', help: 'Activity entries waiting to be written', registers: [registry] });

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

  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write());
    return this.flushing;
  }

  private async write(): Promise<void> {
    if (this.buffer.length === 0) return;
    const rows = this.buffer;
    this.buffer = [];
    const counts = new Map<string, { count: number; last: Date }>();
    for (const r of rows) {
      const c = counts.get(r.authorizationId) ?? { count: 0, last: r.at };
      c.count++;
      if (r.at > c.last) c.last = r.at;
      counts.set(r.authorizationId, c);
    }
    try {
      // One transaction: a flush cut short by an outage is retried whole, never half-written twice.
      await inTransaction(this.db, async (tx) => {
        await insertActivity(tx, rows);
        await addActivity(tx, counts);
      });
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, rows: rows.length }, 'activity flush failed; will retry');
      this.buffer = rows.concat(this.buffer);
      if (this.buffer.length > MAX_BUFFER) this.drop(this.buffer.length - MAX_BUFFER);
    }
    pending.set(this.buffer.length);
  }

  private drop(n: number): void {
    this.buffer.splice(0, n);
    dropped.inc(n);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
