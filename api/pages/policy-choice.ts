// Which policies a user may grant instead of the one an app asked for: the order "narrower or equal" is
// defined here only, from what each policy permits, so it follows the policies as they are defined.
import type { Policy, PolicyPermissions } from '../../database/queries/policies.js';

function kindsWithin(narrow: PolicyPermissions['allowed_kinds'], wide: PolicyPermissions['allowed_kinds']): boolean {
  if (wide === 'all') return true;
  if (narrow === 'all') return false;
  const allowed = new Set(wide);
  return narrow.every((k) => allowed.has(k));
}

/** The encryption rights per NIP, each the policy's own or its general `encrypt`/`decrypt`. */
function rights(p: PolicyPermissions): boolean[] {
  return [
    p.nip04_encrypt ?? p.encrypt,
    p.nip04_decrypt ?? p.decrypt,
    p.nip44_encrypt ?? p.encrypt,
    p.nip44_decrypt ?? p.decrypt,
  ];
}

/** Fields that are limits: absent is no limit, and a smaller one is narrower. */
const LIMITS = ['max_content_bytes', 'expires_after_seconds', 'max_uses'] as const;
const ORDERED = new Set<string>(['allowed_kinds', 'encrypt', 'decrypt', ...LIMITS]);
for (const nip of ['nip04', 'nip44']) for (const op of ['encrypt', 'decrypt']) ORDERED.add(`${nip}_${op}`);

/**
 * True when `narrow` permits nothing `wide` does not: its kinds a subset, each encryption right it has had
 * by `wide` too, each limit of `wide` also a limit of `narrow`, no larger.
 */
export function isNarrowerOrEqual(narrow: PolicyPermissions, wide: PolicyPermissions): boolean {
  if (!kindsWithin(narrow.allowed_kinds, wide.allowed_kinds)) return false;
  const wideRights = rights(wide);
  if (rights(narrow).some((r, i) => r && !wideRights[i])) return false;
  for (const limit of LIMITS) {
    const w = wide[limit];
    const n = narrow[limit];
    if (w !== undefined && (n === undefined || n > w)) return false;
  }
  const a = narrow as unknown as Record<string, unknown>;
  const b = wide as unknown as Record<string, unknown>;
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (ORDERED.has(key)) continue;
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
