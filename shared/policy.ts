// What a policy allows, for both doors (HTTP RPC at the api edge, NIP-46 in the worker). A policy denies
// what it does not allow: kinds for sign_event, encrypt and decrypt rights; ping and get_public_key are
// always allowed. Kinds the user approved "always" for one authorization (its grants) count as allowed.
// A policy with `ask` sends what it does not allow to the user for approval instead of refusing it.
import type { PolicyPermissions } from '../database/queries/policies.js';
import type { RpcMethod } from './farm/jobs.js';

export function policyPermits(
  p: PolicyPermissions,
  method: RpcMethod,
  kind?: number,
  grantedKinds: readonly number[] = [],
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
    case 'nip04_encrypt':
      return p.encrypt;
    case 'nip44_decrypt':
    case 'nip04_decrypt':
      return p.decrypt;
    default:
      return false;
  }
}

/** Whether a request the policy does not allow goes to the user for approval. */
export const policyAsks = (p: PolicyPermissions): boolean => p.ask === true;
