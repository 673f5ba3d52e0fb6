// A one-time message from a form's POST to the page its redirect shows (POST-redirect-GET), for a value
// that may be shown once and must not sit in a URL or a log: a new bunker link with its secret. It is kept
// in Redis for a few minutes, sealed (AES-256-GCM) under a key derived from the session token, which the
// server does not store: Redis holds only ciphertext, any api replica can open it for the same browser
// session, and GETDEL makes it readable once.
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import type { ApiContext } from '../context.js';

export const FLASH_TTL_S = 300;
const FLASH_ID = /^[0-9a-f]{32}$/;

function flashKey(ctx: ApiContext, sessionToken: string, id: string): string {
  const session = createHash('sha256').update(sessionToken).digest('hex');
  return `${ctx.config.KEY_PREFIX}:flash:${session}:${id}`;
}

function sealKey(sessionToken: string): Buffer {
  return createHmac('sha256', sessionToken).update('keyfarm page flash v1').digest();
}

/** Keeps `value` for the next page of this session; returns the id the redirect carries (not a secret). */
export async function putFlash(ctx: ApiContext, sessionToken: string, value: unknown): Promise<string> {
  const id = randomBytes(16).toString('hex');
  const key = sealKey(sessionToken);
  const iv = randomBytes(12);
  try {
    const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from(id));
    const sealed = Buffer.concat([
      iv,
      cipher.update(JSON.stringify(value), 'utf8'),
      cipher.final(),
      cipher.getAuthTag(),
    ]);
    await ctx.redis.set(flashKey(ctx, sessionToken, id), sealed.toString('base64'), 'EX', FLASH_TTL_S);
    return id;
  } finally {
    key.fill(0);
  }
}

/** The value once, for the session that put it; undefined when taken already, expired, or not this session's. */
export async function takeFlash<T>(
  ctx: ApiContext,
  sessionToken: string,
  id: string | undefined,
): Promise<T | undefined> {
  if (!id || !FLASH_ID.test(id)) return undefined;
  const stored = await ctx.redis.getdel(flashKey(ctx, sessionToken, id));
  if (!stored) return undefined;
  const sealed = Buffer.from(stored, 'base64');
  if (sealed.length < 12 + 16) return undefined;
  const key = sealKey(sessionToken);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12)).setAAD(Buffer.from(id));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    const text = Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]).toString(
      'utf8',
    );
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  } finally {
    key.fill(0);
  }
}
