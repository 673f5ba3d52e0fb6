// Bearer secrets (sessions, OAuth codes, access and refresh tokens) are random, shown once and stored
// only as SHA-256 hashes: a database leak yields no usable token.
import { createHash, randomBytes } from 'node:crypto';

export type TokenKind = 'session' | 'code' | 'access' | 'refresh' | 'bunker-secret';

const PREFIX: Record<TokenKind, string> = {
  session: 'kfs_',
  code: 'kfc_',
  access: 'kfa_',
  refresh: 'kfr_',
  'bunker-secret': '',
};

export function newToken(kind: TokenKind): string {
  return PREFIX[kind] + randomBytes(32).toString(kind === 'bunker-secret' ? 'hex' : 'base64url');
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
