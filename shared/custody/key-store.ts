// Nostr secret keys at rest: sealed by envelope encryption into the `keys` table, opened only where a
// key is used (worker memory). Callers get key ids and pubkeys, never rows.
import { randomUUID } from 'node:crypto';
import type { Queryable } from '../../database/pool.js';
import { findKey, insertKey, type KeyOwnerKind } from '../../database/queries/keys.js';
import { getPublicKeyHex } from '../nostr/keys.js';
import { openSecret, ownerAad, sealSecret } from './envelope.js';
import type { KeyManager } from './key-manager.js';

export class KeyNotFoundError extends Error {
  override name = 'KeyNotFoundError';
}

export interface StoredKey {
  keyId: string;
  pubkey: string;
}

export class KeyStore {
  constructor(private readonly km: KeyManager) {}

  async create(
    db: Queryable,
    ownerKind: KeyOwnerKind,
    ownerId: string,
    secretKey: Uint8Array,
    name?: string,
  ): Promise<StoredKey> {
    const pubkey = getPublicKeyHex(secretKey);
    const sealed = await sealSecret(this.km, secretKey, ownerAad(ownerKind, ownerId));
    const keyId = randomUUID();
    await insertKey(db, { id: keyId, ownerKind, ownerId, pubkey, name, ...sealed });
    return { keyId, pubkey };
  }

  async open(db: Queryable, keyId: string): Promise<{ secretKey: Uint8Array; pubkey: string }> {
    const row = await findKey(db, keyId);
    if (!row) throw new KeyNotFoundError('key not found');
    const opened = await openSecret(this.km, row, ownerAad(row.ownerKind, row.ownerId));
    // A plain Uint8Array, not a Buffer: Buffer#slice shares memory, so a caller's "copy" would not be one.
    const secretKey = new Uint8Array(opened);
    opened.fill(0);
    return { secretKey, pubkey: row.pubkey };
  }
}
