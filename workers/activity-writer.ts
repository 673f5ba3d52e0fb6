// Signing activity is written in batches, off the hot path: entries gather in memory and are flushed
// about once a second as one insert plus one counter update per authorization.
import type { Db } from '../database/pool.js';
import { insertActivity, type ActivityRow } from '../database/queries/activity.js';
import { addActivity } from '../database/queries/authorizations.js';
import type { Logger } from '../shared/logger.js';
import type { ActivityEntry, ActivitySink } from './activity.js';

const MAX_BUFFER = 50_000;

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
    if (this.buffer.length >= MAX_BUFFER) this.buffer.shift();
    this.buffer.push({ ...e, at: new Date() });
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
      await insertActivity(this.db, rows);
      await addActivity(this.db, counts);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, rows: rows.length }, 'activity flush failed; will retry');
      this.buffer = rows.concat(this.buffer).slice(-MAX_BUFFER);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
