// A policy in plain words, for the consent page and the list of connected apps.
import type { PolicyPermissions } from '../../database/queries/policies.js';

const KIND_NAMES: Record<number, string> = {
  0: 'your profile',
  1: 'short notes',
  3: 'your follow list',
  4: 'direct messages (old style)',
  5: 'deletion requests',
  6: 'reposts',
  7: 'reactions',
  13: 'sealed private messages',
  14: 'private chat messages',
  15: 'private file messages',
  16: 'generic reposts',
  44: 'private messages',
  1059: 'gift-wrapped messages',
  1111: 'comments',
  9734: 'zap requests',
  9735: 'zap receipts',
  10000: 'your mute list',
  10001: 'pinned notes',
  10002: 'your relay list',
  10050: 'your private-message relay list',
  22242: 'relay logins',
  24242: 'media upload permissions',
  27235: 'web logins',
  30023: 'long-form articles',
  30024: 'draft articles',
};

export function kindName(kind: number): string {
  const name = KIND_NAMES[kind];
  return name ? `${name} (kind ${kind})` : `kind ${kind}`;
}

export interface PolicyWords {
  can: string[];
  cannot: string[];
}

export function describePolicy(p: PolicyPermissions): PolicyWords {
  const can = ['See your public key.'];
  const cannot = ['See or export your secret key.'];
  if (p.allowed_kinds === 'all')
    can.push('Sign any event in your name, of any kind: posts, profile changes, deletions, anything.');
  else if (p.allowed_kinds.length === 0) cannot.push('Sign any event in your name.');
  else {
    can.push(`Sign these events in your name: ${p.allowed_kinds.map(kindName).join(', ')}.`);
    cannot.push('Sign any other kind of event.');
  }
  const right = (nip: 'nip04' | 'nip44', op: 'encrypt' | 'decrypt') => p[`${nip}_${op}`] ?? p[op];
  const encrypt = nipsWhere((nip) => right(nip, 'encrypt'));
  const decrypt = nipsWhere((nip) => right(nip, 'decrypt'));
  if (encrypt.yes.length) can.push(`Encrypt messages as you (${encrypt.yes.join(', ')}).`);
  if (encrypt.no.length) cannot.push(`Encrypt messages as you (${encrypt.no.join(', ')}).`);
  const readWords = (nips: string[]) =>
    nips.length === 2
      ? 'Decrypt and read your private messages.'
      : `Decrypt and read your private messages (${nips[0]}).`;
  if (decrypt.yes.length) can.push(readWords(decrypt.yes));
  if (decrypt.no.length) cannot.push(readWords(decrypt.no));
  if (p.max_content_bytes !== undefined)
    cannot.push(`Sign or encrypt more than ${p.max_content_bytes} bytes of content at a time.`);
  if (p.max_uses !== undefined) cannot.push(`Sign, encrypt or decrypt more than ${p.max_uses} times in all.`);
  if (p.expires_after_seconds !== undefined)
    cannot.push(`Act for you longer than ${duration(p.expires_after_seconds)} after you connect it.`);
  if (p.ask) can.push('Ask you, one request at a time, for anything else.');
  return { can, cannot };
}

function nipsWhere(test: (nip: 'nip04' | 'nip44') => boolean): { yes: string[]; no: string[] } {
  const yes: string[] = [];
  const no: string[] = [];
  for (const nip of ['nip04', 'nip44'] as const) (test(nip) ? yes : no).push(nip === 'nip04' ? 'NIP-04' : 'NIP-44');
  return { yes, no };
}

/** Seconds in the largest whole unit that fits: "3 days", "90 minutes". */
export function duration(seconds: number): string {
  const units: [number, string][] = [
    [86_400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
  ];
  for (const [size, name] of units) {
    if (seconds % size === 0 && seconds >= size) {
      const n = seconds / size;
      return `${n} ${name}${n === 1 ? '' : 's'}`;
    }
  }
  return `${seconds} seconds`;
}
