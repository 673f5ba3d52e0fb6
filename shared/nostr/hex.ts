// Strict hex helpers: Buffer.from(s, 'hex') silently stops at the first bad character, so every decode
// here is checked against a pattern first.
const HEX_PATTERN = /^(?:[0-9a-fA-F]{2})*$/;

export function isLowerHex(s: unknown, length: number): s is string {
  return typeof s === 'string' && s.length === length && /^[0-9a-f]*$/.test(s);
}

/** Decodes hex of either case; throws a TypeError (without echoing the input) when it is not hex. */
export function hexToBytes(hex: string): Uint8Array {
  if (typeof hex !== 'string' || !HEX_PATTERN.test(hex)) throw new TypeError('expected a hex string');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
