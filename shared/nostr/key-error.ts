/** A key that is malformed, out of range or not the one expected; the message never quotes the key. */
export class InvalidKeyError extends Error {
  override readonly name = 'InvalidKeyError';
}
