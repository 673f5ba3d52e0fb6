// Groups requests for one shard into one batch: the queue's cost is per job, so N requests that travel
// together cost one job. A batch closes on setImmediate (after the I/O of the current turn), after
// `windowMs` if set, or at once when it reaches `maxBatch`.
//
// Group commit: while a shard already has `maxInFlight` batches out, its next batch stays open and keeps
// collecting; it leaves the moment one of them is answered. Under load this turns many one-request jobs
// into a few large ones with no added latency at low load. A batch is never held longer than `holdMaxMs`
// past the oldest one in flight, so a job stalled on a dead worker does not block its shard.

export interface MicroBatcherOptions {
  maxBatch?: number;
  windowMs?: number;
  /** Batches of one shard in flight at once before new ones wait (default: no limit). */
  maxInFlight?: number;
  /** Longest a batch waits for a slot, counted from the oldest batch in flight (default 25 ms). */
  holdMaxMs?: number;
  /** The clock holds are measured on (default performance.now); a test may make it disagree with timers. */
  now?: () => number;
}

/** Sends a batch; the promise settles when the batch has been answered (or refused). */
export type FlushBatch<T> = (shard: number, items: T[]) => Promise<void> | void;

export class MicroBatcher<T> {
  private readonly open = new Map<number, T[]>();
  /** Start times of each shard's batches in flight, oldest first. */
  private readonly inFlight = new Map<number, number[]>();
  private readonly maxBatch: number;
  private readonly windowMs: number;
  private readonly maxInFlight: number;
  private readonly holdMaxMs: number;
  private readonly now: () => number;
  private scheduled = false;
  private holdTimer: NodeJS.Timeout | undefined;
  /** When holdTimer fires, on this.now. */
  private holdDue = 0;

  constructor(
    private readonly flush: FlushBatch<T>,
    opts: MicroBatcherOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 256;
    this.windowMs = opts.windowMs ?? 0;
    this.maxInFlight = opts.maxInFlight ?? Number.POSITIVE_INFINITY;
    this.holdMaxMs = opts.holdMaxMs ?? 25;
    this.now = opts.now ?? (() => performance.now());
  }

  add(shard: number, item: T): void {
    let batch = this.open.get(shard);
    if (!batch) {
      batch = [];
      this.open.set(shard, batch);
    }
    batch.push(item);
    if (batch.length >= this.maxBatch) {
      this.dispatch(shard);
      return;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      if (this.windowMs > 0) setTimeout(() => this.flushReady(), this.windowMs);
      else setImmediate(() => this.flushReady());
    }
  }

  /** Sends every open batch now, slots or not (shutdown). */
  flushAll(): void {
    for (const shard of [...this.open.keys()]) this.dispatch(shard);
  }

  /** Items added but not yet sent. */
  get pending(): number {
    let n = 0;
    for (const b of this.open.values()) n += b.length;
    return n;
  }

  /** Sends the open batches whose shard has a free slot; the rest wait for an answer or the hold limit. */
  private flushReady(): void {
    this.scheduled = false;
    let wait = Number.POSITIVE_INFINITY;
    for (const shard of [...this.open.keys()]) {
      const remaining = this.holdRemaining(shard);
      if (remaining <= 0) this.dispatch(shard);
      else wait = Math.min(wait, remaining);
    }
    if (wait === Number.POSITIVE_INFINITY) return;
    // Timers count from libuv's loop time (whole milliseconds, and stale while a turn runs), so one may fire
    // before the clock says the hold is over: the delay is rounded up, and an early timer re-arms for what
    // is left, never for a whole hold.
    const due = this.now() + Math.ceil(wait) + 1;
    if (this.holdTimer && this.holdDue <= due) return;
    clearTimeout(this.holdTimer);
    this.holdDue = due;
    this.holdTimer = setTimeout(() => {
      this.holdTimer = undefined;
      this.flushReady();
    }, Math.ceil(wait) + 1);
  }

  /** Milliseconds before the shard may send its next batch: 0 with a free slot, else until the hold limit. */
  private holdRemaining(shard: number): number {
    const starts = this.inFlight.get(shard);
    if (!starts || starts.length < this.maxInFlight) return 0;
    return starts[0]! + this.holdMaxMs - this.now();
  }

  private dispatch(shard: number): void {
    const batch = this.open.get(shard);
    if (!batch) return;
    this.open.delete(shard);
    const started = this.now();
    let starts = this.inFlight.get(shard);
    if (!starts) this.inFlight.set(shard, (starts = []));
    starts.push(started);
    const settled = () => {
      const list = this.inFlight.get(shard);
      if (list) {
        const i = list.indexOf(started);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0) this.inFlight.delete(shard);
      }
      if (this.open.has(shard) && this.holdRemaining(shard) <= 0) this.dispatch(shard);
    };
    try {
      Promise.resolve(this.flush(shard, batch)).then(settled, settled);
    } catch {
      settled();
    }
  }
}
