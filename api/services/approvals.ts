// The HTTP door's side of approval per request. A call the policy does not allow, under a policy that
// asks, either runs (the user approved this very call earlier and the app sent it again), waits for the
// user's decision when the app asked to (`Prefer: wait=N`, bounded by APPROVAL_WAIT_MAX_SECONDS), or is
// answered 403 with the approval's address. The call itself never leaves this process: the approval holds
// its summary sealed for the page and a keyed hash to match a retry.
import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { approvalStatus, createApproval, useHttpApproval } from '../../database/queries/approvals.js';
import type { ActingAuthorization } from '../../database/queries/authorizations.js';
import { approvalUrl, callHash, newApprovalId, sealSummary, summarize } from '../../shared/approvals.js';
import type { RpcCall } from '../../shared/farm/jobs.js';
import type { ApiContext } from '../context.js';
import { HttpError, forbidden } from '../errors.js';

/** How often a waiting request reads its approval's state. */
const POLL_MS = 500;
/** Requests one api process holds waiting, over all authorizations; past it a request does not wait. */
const MAX_WAITING = 1000;

/** Requests held waiting in this process, per authorization (identical calls share one approval, not one wait). */
const waiting = new Map<string, number>();
let waitingTotal = 0;

/** The 403 body of a call that waits for (or was refused by) its user. */
export interface ApprovalRefusal {
  error: string;
  reason: 'approval_required' | 'approval_denied';
  approval_url?: string;
  approval_id?: string;
}

/** Seconds the app asked to wait (`Prefer: wait=N`, RFC 7240), bounded by the setting; 0 when it did not ask. */
export function requestedWait(prefer: string | string[] | undefined, maxSeconds: number): number {
  const header = Array.isArray(prefer) ? prefer.join(',') : (prefer ?? '');
  const m = /(?:^|[,;\s])wait\s*=\s*"?(\d{1,6})"?(?:$|[,;\s])/i.exec(header);
  return m ? Math.min(Number(m[1]), maxSeconds) : 0;
}

/** `approved` when the call may run now; otherwise the 403 body to answer with. */
export async function askForApproval(
  ctx: ApiContext,
  acting: ActingAuthorization,
  call: RpcCall,
  waitSeconds: number,
  /** The waiting request: a client that hung up stops the wait. */
  connection: IncomingMessage,
): Promise<'approved' | ApprovalRefusal> {
  const { config, db } = ctx;
  if (Buffer.byteLength(JSON.stringify(call)) > config.APPROVAL_MAX_REQUEST_BYTES)
    throw forbidden('Operation denied by policy (too large to ask for approval)');
  const requestHash = callHash(ctx.sealer, acting.id, call);
  if (await useHttpApproval(db, acting.id, { requestHash })) return 'approved';

  const id = newApprovalId();
  const created = await createApproval(
    db,
    {
      id,
      authorizationId: acting.id,
      userId: acting.userId,
      door: 'http',
      method: call.method,
      kind: call.method === 'sign_event' ? call.event.kind : undefined,
      summary: sealSummary(ctx.sealer, id, summarize(call)),
      requestHash,
    },
    {
      ttlSeconds: config.APPROVAL_TTL_SECONDS,
      maxPerAuthorization: config.APPROVAL_MAX_PENDING,
      maxPerUser: config.APPROVAL_MAX_PENDING_PER_USER,
    },
  );
  if ('full' in created)
    throw new HttpError(429, 'too many requests are waiting for approval; try again later', {
      'retry-after': String(Math.min(config.APPROVAL_TTL_SECONDS, 60)),
    });
  const asked: ApprovalRefusal = {
    error: 'this request needs your approval: open approval_url',
    reason: 'approval_required',
    approval_url: approvalUrl(config.PUBLIC_URL, created.id),
    approval_id: created.id,
  };
  // Each wait reads the database: an app gets no more waits than it may have approvals pending.
  const mine = waiting.get(acting.id) ?? 0;
  if (waitSeconds <= 0 || mine >= config.APPROVAL_MAX_PENDING || waitingTotal >= MAX_WAITING) return asked;
  waiting.set(acting.id, mine + 1);
  waitingTotal++;
  try {
    return await waitForDecision(ctx, acting.id, created.id, waitSeconds, connection, asked);
  } finally {
    waitingTotal--;
    const left = (waiting.get(acting.id) ?? 1) - 1;
    if (left > 0) waiting.set(acting.id, left);
    else waiting.delete(acting.id);
  }
}

async function waitForDecision(
  ctx: ApiContext,
  authorizationId: string,
  approvalId: string,
  waitSeconds: number,
  connection: IncomingMessage,
  asked: ApprovalRefusal,
): Promise<'approved' | ApprovalRefusal> {
  const deadline = Date.now() + waitSeconds * 1000;
  while (Date.now() < deadline && !connection.socket.destroyed) {
    const state = await approvalStatus(ctx.db, approvalId);
    if (!state || state.expired) break;
    if (state.status === 'denied') return { error: 'the user denied this request', reason: 'approval_denied' };
    if (state.status === 'approved') {
      if (await useHttpApproval(ctx.db, authorizationId, { id: approvalId })) return 'approved';
      break; // used by a retry of the same call meanwhile
    }
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
  }
  return asked;
}
