// The farm payload key (what payload-seal.ts seals with): 32 random bytes made once, by whichever process
// starts first, and kept in PostgreSQL sealed under the KEK like a user's key. Every process opens it at
// start and keeps it in memory only. Two processes starting together may both make one: the insert keeps
// the first and every process reads back that one, so they all agree.
import { randomBytes } from 'node:crypto';
import type { Queryable } from '../../database/pool.js';
import { findPayloadKey, insertPayloadKeyIfAbsent } from '../../database/queries/payload-keys.js';
import { openSecret, sealSecret } from '../custody/envelope.js';
import type { KeyManager } from '../custody/key-manager.js';
import { PAYLOAD_KEY_BYTES, PayloadSealer } from './payload-seal.js';

export const FARM_PAYLOAD_KEY_ID = 'farm';

/** The AAD of a payload key row: a row copied under another id does not open. */
export const payloadKeyAad = (id: string): string => `keyfarm:v1:payload-key:${id}`;

export async function loadPayloadSealer(
  db: Queryable,
  km: KeyManager,
  id = FARM_PAYLOAD_KEY_ID,
): Promise<PayloadSealer> {
  let row = await findPayloadKey(db, id);
  if (!row) {
    const fresh = randomBytes(PAYLOAD_KEY_BYTES);
    try {
      await insertPayloadKeyIfAbsent(db, { id, ...(await sealSecret(km, fresh, payloadKeyAad(id))) });
    } finally {
      fresh.fill(0);
    }
    row = await findPayloadKey(db, id);
    if (!row) throw new Error(`payload key ${id} is missing right after it was stored`);
  }
  const key = await openSecret(km, row, payloadKeyAad(id));
  try {
    return new PayloadSealer(key);
  } finally {
    key.fill(0);
  }
}
