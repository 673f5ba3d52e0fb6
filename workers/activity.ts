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
}
