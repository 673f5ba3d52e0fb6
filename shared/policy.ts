// What a policy allows, for both doors (HTTP RPC at the api edge, NIP-46 in the worker). A policy denies
// what it does not allow: kinds for sign_event, encrypt and decrypt rights (per NIP when the policy says),
// and content over its size limit; ping and get_public_key are always allowed. Kinds the user approved
// "always" for one authorization (its grants) count as allowed. A policy with `ask` sends what it does not
// allow to the user for approval instead of refusing it. An authorization's lifetime under its policy is
// folded into its expiry where it is read; its count of uses is kept in PostgreSQL
// (database/queries/authorization-uses.ts).
import type { PolicyPermissions } from '../database/queries/policies.js';
import type { RpcCall, RpcMethod } from './farm/jobs.js';

export const DENIED_BY_POLICY = 'Operation denied by policy';
export const USES_EXHAUSTED = 'this authorization has used all the uses its policy allows';

/** The UTF-8 size the content limit counts: a sign_event's content, an encryption's plaintext. */
export function contentBytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** Why the policy refuses this request, or undefined when it permits it. */
export function policyRefusal(
  p: PolicyPermissions,
  method: RpcMethod,
  kind?: number,
  bytes?: number,
  grantedKinds: readonly number[] = [],
): string | undefined {
  if (!methodPermitted(p, method, kind, grantedKinds)) return DENIED_BY_POLICY;
  if (p.max_content_bytes !== undefined && bytes !== undefined && bytes > p.max_content_bytes)
    return `content too large for this policy (at most ${p.max_content_bytes} bytes)`;
  return undefined;
}

export function policyPermits(
  p: PolicyPermissions,
  method: RpcMethod,
  kind?: number,
  bytes?: number,
  grantedKinds: readonly number[] = [],
): boolean {
  return policyRefusal(p, method, kind, bytes, grantedKinds) === undefined;
}

function methodPermitted(
  p: PolicyPermissions,
  method: RpcMethod,
  kind: number | undefined,
  grantedKinds: readonly number[],
): boolean {
  switch (method) {
    case 'get_public_key':
    case 'ping':
      return true;
    case 'sign_event':
      return (
        p.allowed_kinds === 'all' ||
        (kind !== undefined && (p.allowed_kinds.includes(kind) || grantedKinds.includes(kind)))
      );
    case 'nip44_encrypt':
      return p.nip44_encrypt ?? p.encrypt;
    case 'nip04_encrypt':
      return p.nip04_encrypt ?? p.encrypt;
    case 'nip44_decrypt':
      return p.nip44_decrypt ?? p.decrypt;
    case 'nip04_decrypt':
      return p.nip04_decrypt ?? p.decrypt;
    default:
      return false;
  }
}

/** Whether a request the policy does not allow goes to the user for approval. */
export const policyAsks = (p: PolicyPermissions): boolean => p.ask === true;

/** The content a policy's size limit counts in this call, if any. */
function callContent(call: RpcCall): string | undefined {
  if (call.method === 'sign_event') return call.event.content;
  if (call.method === 'nip44_encrypt' || call.method === 'nip04_encrypt') return call.plaintext;
  return undefined;
}

/** policyRefusal for a parsed call: the kind of a sign_event's event and the content size included. */
export function callRefusal(
  p: PolicyPermissions,
  call: RpcCall,
  grantedKinds: readonly number[] = [],
): string | undefined {
  const content = callContent(call);
  return policyRefusal(
    p,
    call.method,
    call.method === 'sign_event' ? call.event.kind : undefined,
    content === undefined ? undefined : contentBytes(content),
    grantedKinds,
  );
}

/** Whether a permitted request of this method counts as a use (it works with the user's key). */
export function countsAsUse(method: RpcMethod): boolean {
  return method !== 'ping' && method !== 'get_public_key';
}
