// How a worker gets a secret key it does not hold yet: the row from Postgres, its data key unwrapped by
// the KeyManager, the secret decrypted. The worker caches what this returns (workers/key-cache.ts).
export interface LoadedKey {
  secretKey: Uint8Array;
  pubkey: string;
}

/**
 * Throws KeyNotFoundError (shared/custody/key-store.ts) when no such key exists (the request gets 404),
 * KeyManagerUnavailableError (shared/custody/key-manager.ts) when the KEK cannot be reached (503); any
 * other error (the database unreachable) is a 503 too. The job skeleton (shard-job.ts) tells them apart
 * by class.
 */
export interface KeyLoader {
  load(keyId: string): Promise<LoadedKey>;
}
