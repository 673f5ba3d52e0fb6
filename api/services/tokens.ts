// Bearer secrets (sessions, OAuth codes, access and refresh tokens, authorization handles, mailed links) are
// random, shown once and stored only as SHA-256 hashes: a database leak yields no usable token.
import { hash, randomBytes, randomInt } from 'node:crypto';

export type TokenKind =
  | 'session'
  | 'code'
  | 'access'
  | 'refresh'
  | 'bunker-secret'
  | 'handle'
  | 'email-verify'
  | 'password-reset'
  | 'team-invite';

const PREFIX: Record<Exclude<TokenKind, 'code'>, string> = {
  session: 'kfs_',
  access: 'kfa_',
  refresh: 'kfr_',
  'email-verify': 'kfv_',
  'password-reset': 'kfp_',
  'team-invite': 'kft_',
  'bunker-secret': '',
  handle: '',
};

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** 43 characters of 62: over 256 bits. */
const CODE_LENGTH = 43;

/** Keycast's code format: letters and digits only (apps may check it). */
function alphanumeric(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
  return out;
}

export function newToken(kind: TokenKind): string {
  if (kind === 'code') return alphanumeric(CODE_LENGTH);
  // Handles are Keycast's 64 hex characters.
  const hex = kind === 'bunker-secret' || kind === 'handle';
  return PREFIX[kind] + randomBytes(32).toString(hex ? 'hex' : 'base64url');
}

export function hashToken(token: string): Buffer {
  return hash('sha256', token, 'buffer');
}
