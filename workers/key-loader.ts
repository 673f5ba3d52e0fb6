// How a worker gets a secret key it does not hold yet: the row from Postgres, its data key unwrapped by
// the KeyManager, the secret decrypted. The worker caches what this returns (workers/key-cache.ts).
import { KeyManagerUnavailableError } from '../shared/custody/key-manager.js';

export interface LoadedKey {
  secretKey: Uint8Array;
  pubkey: string;
}

/**
 * Throws an error named 'KeyNotFoundError' (shared/custody/key-store.ts) when no such key exists (the item
 * gets 404), or KeyManagerUnavailableError when the KEK cannot be reached (503).
 */
export interface KeyLoader {
  load(keyId: string): Promise<LoadedKey>;
}

/** Matched by name so any module's KeyNotFoundError class is understood. */
export function isKeyNotFound(err: unknown): boolean {
  return err instanceof Error && err.name === 'KeyNotFoundError';
}

export function isKeyManagerUnavailable(err: unknown): boolean {
  return err instanceof KeyManagerUnavailableError || (err instanceof Error && err.name === 'KeyManagerUnavailableError');
}
