import type { PolicyPermissions } from '../../database/queries/policies.js';
import type { RpcCall } from '../../shared/farm/jobs.js';
import { callRefusal } from '../../shared/policy.js';

/** Whether the policy allows this call (the kind of a sign_event's event and its content size included). */
export function policyAllows(p: PolicyPermissions, call: RpcCall, grantedKinds: readonly number[] = []): boolean {
  return callRefusal(p, call, grantedKinds) === undefined;
}
