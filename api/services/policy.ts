import type { PolicyPermissions } from '../../database/queries/policies.js';
import type { RpcCall } from '../../shared/farm/jobs.js';
import { policyPermits } from '../../shared/policy.js';

/** Whether the policy allows this call (the kind of a sign_event's event included). */
export function policyAllows(p: PolicyPermissions, call: RpcCall, grantedKinds: readonly number[] = []): boolean {
  return policyPermits(p, call.method, call.method === 'sign_event' ? call.event.kind : undefined, grantedKinds);
}
