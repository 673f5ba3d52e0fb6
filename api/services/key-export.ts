// Key export, at the user's explicit request after re-entering the password: the nsec, and a NIP-49
// ncryptsec under a passphrase of the user's choosing (or the nsec alone, without one). The one place the
// api decrypts a user's key; the secret goes only into the page the user asked for, never into a log.
import { randomBytes, scrypt } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { encodeBytes } from 'nostr-tools/nip19';
import { findUserById } from '../../database/queries/users.js';
import { nsecEncode } from '../../shared/nostr/keys.js';
import type { ApiContext } from '../context.js';
import { badRequest, forbidden, notFound } from '../errors.js';
import { checkPasswordLimited } from './login.js';

/** scrypt cost of the ncryptsec (N = 2^16, as in NIP-49's examples): about 64 MiB and half a second. */
export const NCRYPTSEC_LOG_N = 16;
/** NIP-49 key security byte: 0x02, "the client does not track this". */
const KEY_SECURITY_UNKNOWN = 0x02;
export const MIN_PASSPHRASE_LENGTH = 8;
export const EMAIL_NOT_VERIFIED =
  'confirm your email address before exporting your key: open the link we mailed you, or ask for a new one on your account page';

function scryptAsync(password: string, salt: Uint8Array, logN: number): Promise<Buffer> {
  const N = 2 ** logN;
  // Node's scrypt runs on the libuv pool, so the event loop keeps serving while it works.
  return new Promise((resolve, reject) =>
    scrypt(password, salt, 32, { N, r: 8, p: 1, maxmem: 256 * N * 8 }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

/** NIP-49: version 0x02, log N, salt, nonce, key security byte, XChaCha20-Poly1305 ciphertext; bech32 ncryptsec. */
export async function encryptNcryptsec(
  secretKey: Uint8Array,
  passphrase: string,
  logN = NCRYPTSEC_LOG_N,
): Promise<string> {
  const salt = randomBytes(16);
  const nonce = randomBytes(24);
  const key = await scryptAsync(passphrase.normalize('NFKC'), salt, logN);
  try {
    const ad = Uint8Array.of(KEY_SECURITY_UNKNOWN);
    const ciphertext = xchacha20poly1305(key, nonce, ad).encrypt(secretKey);
    const payload = new Uint8Array([0x02, logN, ...salt, ...nonce, ...ad, ...ciphertext]);
    return encodeBytes('ncryptsec', payload);
  } finally {
    key.fill(0);
  }
}

export interface KeyExport {
  nsec: string;
  /** Only when a passphrase was given. */
  ncryptsec?: string;
}

export async function exportUserKey(
  ctx: ApiContext,
  input: { userId: string; password: string; passphrase?: string; ip: string },
): Promise<KeyExport> {
  if (input.passphrase !== undefined && input.passphrase.length < MIN_PASSPHRASE_LENGTH)
    throw badRequest(`the passphrase must be at least ${MIN_PASSPHRASE_LENGTH} characters`);
  const user = await findUserById(ctx.db, input.userId);
  if (!user) throw notFound('no such account');
  // As Keycast: the key leaves only for an account whose address is confirmed (the way back in if the
  // password is lost), checked before the password so no attempt is counted.
  if (!user.emailVerifiedAt) throw forbidden(EMAIL_NOT_VERIFIED);
  await checkPasswordLimited(ctx, user.email, input.password, input.ip);
  const { secretKey } = await ctx.keyStore.open(ctx.db, user.keyId);
  try {
    const nsec = nsecEncode(secretKey);
    return input.passphrase === undefined
      ? { nsec }
      : { nsec, ncryptsec: await encryptNcryptsec(secretKey, input.passphrase) };
  } finally {
    secretKey.fill(0);
  }
}
