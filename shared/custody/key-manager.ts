// A KeyManager holds the key-encryption key (KEK) and wraps/unwraps data keys (DEKs) with it.
// The KEK never leaves it; the KEK id is stored with every wrapped DEK so rows can be re-wrapped later.

export interface KeyManager {
  readonly kind: 'local' | 'gcp';
  /** Id of the KEK new DEKs are wrapped under. */
  readonly kekId: string;
  wrap(dek: Uint8Array): Promise<Uint8Array>;
  /** Unwraps a DEK wrapped under `kekId` (which may be an older KEK than the current one). */
  unwrap(wrapped: Uint8Array, kekId: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** The KeyManager could not be reached or refused; callers answer 503 for cold keys. */
export class KeyManagerUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeyManagerUnavailableError';
  }
}
