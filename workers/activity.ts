// Where a worker reports each request it answered successfully (the sessions page's activity columns).
// Implementations batch their writes; record() must return at once and never throw.
import type { RpcMethod } from '../shared/farm/jobs.js';

export interface ActivityEntry {
  authorizationId: string;
  method: RpcMethod;
  /** The event kind, for sign_event. */
  kind?: number;
  /** The signed event's id, for sign_event. */
  eventId?: string;
  door: 'http' | 'nip46';
}

export interface ActivitySink {
  record(e: ActivityEntry): void;
  /**
   * Resolves once everything recorded so far would survive this process's crash. A job awaits it before
   * its answer leaves, so no answered request goes unrecorded; it never throws.
   */
  persist?(): Promise<void>;
  /**
   * Takes what was recorded so far, for the caller to append in a write of its own that goes before the
   * answer (the shard queue's completion, on a single Redis); undefined when nothing was recorded. When
   * that write fails, `failed()` hands the rows to where persist() would have put them.
   */
  take?(): ActivityBatch | undefined;
}

/** Recorded activity as one stream entry: appended to `key` with `field` = `value`, the stream trimmed to about `maxLength`. */
export interface ActivityBatch {
  key: string;
  field: string;
  value: string;
  maxLength: number;
  failed(): void;
}
