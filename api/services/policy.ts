import type { PolicyPermissions } from '../../database/queries/policies.js';
import type { RpcCall } from '../../shared/farm/jobs.js';

/** A policy denies what it does not allow: kinds for sign_event, encrypt and decrypt rights. */
export function policyAllows(p: PolicyPermissions, call: RpcCall): boolean {
  switch (call.method) {
    case 'get_public_key':
    case 'ping':
      return true;
    case 'sign_event':
      return p.allowed_kinds === 'all' || p.allowed_kinds.includes(call.event.kind);
    case 'nip44_encrypt':
    case 'nip04_encrypt':
      return p.encrypt;
    case 'nip44_decrypt':
    case 'nip04_decrypt':
      return p.decrypt;
  }
}
