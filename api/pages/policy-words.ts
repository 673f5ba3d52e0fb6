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
  (p.encrypt ? can : cannot).push('Encrypt messages as you (NIP-04, NIP-44).');
  (p.decrypt ? can : cannot).push('Decrypt and read your private messages.');
  if (p.ask) can.push('Ask you, one request at a time, for anything else.');
  return { can, cannot };
}
