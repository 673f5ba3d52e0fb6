// What both doors share about asking the user: the approval's id and address, what its page shows (the
// request in plain words, sealed under the farm payload key for that approval only), and the keyed hash
// that lets an HTTP app's retry of the same call find the approval it got.
import { randomBytes } from 'node:crypto';
import type { RpcCall, RpcMethod } from './farm/jobs.js';
import type { PayloadSealer } from './farm/payload-seal.js';

/** What the approval page shows: the method, and the event's kind and content, or the counterparty. */
export interface ApprovalSummary {
  method: RpcMethod;
  kind?: number;
  content?: string;
  tags?: number;
  peer?: string;
}

/** 192 random bits, base64url: an approval's address cannot be guessed. */
export const newApprovalId = (): string => randomBytes(24).toString('base64url');

export const APPROVAL_ID_PATTERN = '^[A-Za-z0-9_-]{32}$';

export const approvalUrl = (publicUrl: string, id: string): string => `${publicUrl}/approve/${id}`;

const aad = (id: string) => `approval:${id}`;

export function summarize(call: RpcCall): ApprovalSummary {
  switch (call.method) {
    case 'sign_event':
      return { method: call.method, kind: call.event.kind, content: call.event.content, tags: call.event.tags.length };
    case 'nip04_encrypt':
    case 'nip44_encrypt':
    case 'nip04_decrypt':
    case 'nip44_decrypt':
      return { method: call.method, peer: call.peer };
    default:
      return { method: call.method };
  }
}

export const sealSummary = (sealer: PayloadSealer, id: string, s: ApprovalSummary): string => sealer.seal(s, aad(id));

export const openSummary = (sealer: PayloadSealer, id: string, sealed: string): ApprovalSummary =>
  sealer.open<ApprovalSummary>(sealed, aad(id));

/** The keyed hash of an HTTP call under one authorization (the same call hashes the same). */
export const callHash = (sealer: PayloadSealer, authorizationId: string, call: RpcCall): Buffer =>
  sealer.mac(`${authorizationId}\n${JSON.stringify(call)}`, 'approval call');
