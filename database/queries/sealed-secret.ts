// How a sealed secret is stored (keys and payload_keys rows); shared/custody/envelope.ts makes and opens it.
export interface SealedSecret {
  /** AES-256-GCM ciphertext followed by its 16-byte tag. */
  ciphertext: Buffer;
  /** 12-byte GCM nonce. */
  nonce: Buffer;
  wrappedDek: Buffer;
  /** The KEK the DEK is wrapped under. */
  kekId: string;
}
