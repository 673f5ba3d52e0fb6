// The NIP-46 handler's side of approval per request, over the process's Postgres pool: a request the
// policy does not allow (under a policy that asks) is stored as it came, still encrypted to the bunker,
// with what its page shows sealed under the farm payload key; once decided, relay-ingest sends it through
// the pipeline again and the worker uses the decision once.
import { createHash } from 'node:crypto';
import type { Db } from '../database/pool.js';
import { createApproval, useNip46Approval } from '../database/queries/approvals.js';
import type { Nip46Authorization } from '../database/queries/nip46.js';
import { approvalUrl, newApprovalId, sealSummary, summarize } from '../shared/approvals.js';
import type { Config } from '../shared/config.js';
import type { PayloadSealer } from '../shared/farm/payload-seal.js';
import type { NostrEvent } from '../shared/nostr/types.js';
import type { KeyCall } from './shard-job.js';

export type ApprovalsConfig = Pick<
  Config,
  | 'PUBLIC_URL'
  | 'APPROVAL_TTL_SECONDS'
  | 'APPROVAL_MAX_PENDING'
  | 'APPROVAL_MAX_PENDING_PER_USER'
  | 'APPROVAL_MAX_REQUEST_BYTES'
>;

/** What the NIP-46 handler needs to ask the user and to use their decision. */
export interface Nip46Approvals {
  /** Stores the request for its user's decision: the approval's address, or why it cannot wait. */
  ask(a: {
    auth: Nip46Authorization;
    event: NostrEvent;
    call: KeyCall;
  }): Promise<{ url: string } | { refused: string }>;
  /** The decision on approval `id` for the request `eventId`, once; nothing when used already or not its own. */
  use(id: string, authorizationId: string, eventId: string): Promise<'approved' | 'denied' | undefined>;
}

export class PostgresApprovals implements Nip46Approvals {
  constructor(
    private readonly db: Db,
    private readonly sealer: PayloadSealer,
    private readonly config: ApprovalsConfig,
  ) {}

  async ask(a: {
    auth: Nip46Authorization;
    event: NostrEvent;
    call: KeyCall;
  }): Promise<{ url: string } | { refused: string }> {
    const { config } = this;
    if (Buffer.byteLength(JSON.stringify(a.event)) > config.APPROVAL_MAX_REQUEST_BYTES)
      return { refused: 'Operation denied by policy (too large to ask for approval)' };
    const id = newApprovalId();
    const created = await createApproval(
      this.db,
      {
        id,
        authorizationId: a.auth.id,
        userId: a.auth.userId,
        door: 'nip46',
        method: a.call.method,
        kind: a.call.method === 'sign_event' ? a.call.event.kind : undefined,
        summary: sealSummary(this.sealer, id, summarize(a.call)),
        requestEvent: a.event,
        // The event id (public): a job run again asks once.
        requestHash: createHash('sha256').update(a.event.id).digest(),
      },
      {
        ttlSeconds: config.APPROVAL_TTL_SECONDS,
        maxPerAuthorization: config.APPROVAL_MAX_PENDING,
        maxPerUser: config.APPROVAL_MAX_PENDING_PER_USER,
      },
    );
    if ('full' in created) return { refused: 'too many requests are waiting for approval' };
    return { url: approvalUrl(config.PUBLIC_URL, created.id) };
  }

  use(id: string, authorizationId: string, eventId: string): Promise<'approved' | 'denied' | undefined> {
    return useNip46Approval(this.db, id, authorizationId, eventId);
  }
}
