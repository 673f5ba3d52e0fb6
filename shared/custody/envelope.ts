// Envelope encryption of one secret: AES-256-GCM under a fresh random data key (DEK), the DEK wrapped by
// the KeyManager's KEK. The AAD names the secret's owner, so a sealed row copied onto another owner
// fails authentication instead of decrypting.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { KeyManagerUnavailableError, type KeyManager } from './key-manager.js';
import { SecretDecryptionError } from './errors.js';
import { concatAndWipe } from './wipe.js';
import type { SealedSecret } from '../../database/queries/sealed-secret.js';

export { SecretDecryptionError };

export type { SealedSecret };

const DEK_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export type OwnerKind = 'user' | 'bunker' | 'team';

/** The AAD of an owner's secret. Versioned so the binding can change without ambiguity. */
export function ownerAad(ownerKind: OwnerKind, ownerId: string): string {
  if (ownerId === '') throw new Error('ownerAad: ownerId is empty');
  return `keyfarm:v1:${ownerKind}:${ownerId}`;
}

export async function sealSecret(km: KeyManager, secret: Uint8Array, aad: string): Promise<SealedSecret> {
  const dek = randomBytes(DEK_BYTES);
  try {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', dek, nonce);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(secret), cipher.final(), cipher.getAuthTag()]);
    // Read before the await: the DEK is wrapped under the KEK current when sealing started.
    const kekId = km.kekId;
    const wrappedDek = Buffer.from(await km.wrap(dek));
    return { ciphertext, nonce, wrappedDek, kekId };
  } finally {
    dek.fill(0);
  }
}

export async function openSecret(km: KeyManager, sealed: SealedSecret, aad: string): Promise<Uint8Array> {
  const dek = await unwrapDek(km, sealed);
  try {
    if (sealed.nonce.length !== NONCE_BYTES || sealed.ciphertext.length < TAG_BYTES) {
      throw new SecretDecryptionError('decrypt');
    }
    const body = sealed.ciphertext.subarray(0, sealed.ciphertext.length - TAG_BYTES);
    const tag = sealed.ciphertext.subarray(sealed.ciphertext.length - TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', dek, sealed.nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(tag);
    // GCM releases plaintext before checking the tag: it is wiped whether or not the tag holds.
    const plaintext = decipher.update(body);
    try {
      return concatAndWipe([plaintext, decipher.final()]);
    } catch (err) {
      throw new SecretDecryptionError('decrypt', { cause: err });
    } finally {
      plaintext.fill(0);
    }
  } finally {
    dek.fill(0);
  }
}

/**
 * Re-wraps the DEK under `km.kekId` (KEK rotation); the ciphertext and nonce are unchanged.
 * Always calls the KMS, even when the KEK id is unchanged: a Cloud KMS key keeps its name across
 * versions, so re-wrapping is also how a row moves to the key's new primary version.
 */
export async function rewrapSecret(km: KeyManager, sealed: SealedSecret): Promise<SealedSecret> {
  const dek = await unwrapDek(km, sealed);
  try {
    const kekId = km.kekId;
    const wrappedDek = Buffer.from(await km.wrap(dek));
    return { ciphertext: sealed.ciphertext, nonce: sealed.nonce, wrappedDek, kekId };
  } finally {
    dek.fill(0);
  }
}

/** Unwraps the DEK; a KMS outage stays KeyManagerUnavailableError (callers answer 503), anything else means the row cannot be opened. */
async function unwrapDek(km: KeyManager, sealed: SealedSecret): Promise<Buffer> {
  let dek: Uint8Array;
  try {
    dek = await km.unwrap(sealed.wrappedDek, sealed.kekId);
  } catch (err) {
    if (err instanceof KeyManagerUnavailableError) throw err;
    throw new SecretDecryptionError('unwrap', { cause: err });
  }
  // A view over the same memory, so zeroing it zeroes what the KeyManager returned.
  const view = Buffer.from(dek.buffer, dek.byteOffset, dek.byteLength);
  if (view.length !== DEK_BYTES) {
    view.fill(0);
    throw new SecretDecryptionError('unwrap');
  }
  return view;
}
