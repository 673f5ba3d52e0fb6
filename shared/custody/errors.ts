// Errors of key custody. None of them carries key material: messages name KEK ids and reasons only.

/** A KEK id this KeyManager does not hold (a row sealed under another master key or KMS key). */
export class UnknownKekError extends Error {
  constructor(
    readonly kekId: string,
    message: string,
  ) {
    super(message);
    this.name = 'UnknownKekError';
  }
}

/** The KEK refused a wrapped DEK: it was altered, or was wrapped by another key. Retrying cannot help. */
export class WrappedDekRejectedError extends Error {
  constructor(
    readonly kekId: string,
    options?: { cause?: unknown },
  ) {
    super(`wrapped data key was rejected by KEK ${kekId}`, options);
    this.name = 'WrappedDekRejectedError';
  }
}

/** A sealed secret could not be opened: wrong owner (AAD), altered ciphertext/nonce, or a rejected DEK. */
export class SecretDecryptionError extends Error {
  constructor(
    readonly reason: 'unwrap' | 'decrypt',
    options?: { cause?: unknown },
  ) {
    super(
      reason === 'unwrap'
        ? 'secret could not be opened: its data key could not be unwrapped'
        : 'secret could not be opened: ciphertext failed authentication (wrong owner or altered)',
      options,
    );
    this.name = 'SecretDecryptionError';
  }
}
