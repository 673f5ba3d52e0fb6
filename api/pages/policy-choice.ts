// Which policies a user may grant instead of the one an app asked for: the order "narrower or equal" is
// defined here only, from what each policy permits, so it follows the policies as they are defined.
import type { Policy, PolicyPermissions } from '../../database/queries/policies.js';

function kindsWithin(narrow: PolicyPermissions['allowed_kinds'], wide: PolicyPermissions['allowed_kinds']): boolean {
  if (wide === 'all') return true;
  if (narrow === 'all') return false;
  const allowed = new Set(wide);
  return narrow.every((k) => allowed.has(k));
}

/** True when `narrow` permits nothing `wide` does not: its kinds a subset, each flag it sets set in `wide` too. */
export function isNarrowerOrEqual(narrow: PolicyPermissions, wide: PolicyPermissions): boolean {
  if (!kindsWithin(narrow.allowed_kinds, wide.allowed_kinds)) return false;
  const a = narrow as unknown as Record<string, unknown>;
  const b = wide as unknown as Record<string, unknown>;
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (key === 'allowed_kinds') continue;
    const x = a[key];
    const y = b[key];
    if (typeof x === 'boolean' || typeof y === 'boolean') {
      if (x === true && y !== true) return false;
    } else if (JSON.stringify(x) !== JSON.stringify(y)) {
      // A permission field this module does not know how to order: only the same value counts as narrower.
      return false;
    }
  }
  return true;
}

/** How much a policy permits, for listing the choices widest first. */
function breadth(p: PolicyPermissions): number {
  const flags = Object.values(p as unknown as Record<string, unknown>).filter((v) => v === true).length;
  return (p.allowed_kinds === 'all' ? 1_000_000 : p.allowed_kinds.length * 10) + flags;
}

/** The policies a user may grant when an app asks for `requested`: itself first, then the narrower ones, widest first. */
export function grantablePolicies(requested: Policy, all: Policy[]): Policy[] {
  const narrower = all.filter(
    (p) => p.slug !== requested.slug && isNarrowerOrEqual(p.permissions, requested.permissions),
  );
  narrower.sort((x, y) => breadth(y.permissions) - breadth(x.permissions) || x.slug.localeCompare(y.slug));
  return [requested, ...narrower];
}
