// Sealing of request and result content on its way through Redis (job data, return values, replies):
// AES-256-GCM under the farm payload key (shared/farm/payload-key.ts), a random 96-bit nonce per seal,
// and an AAD chosen by the caller (rpc-sealing.ts names the job), so a blob copied onto another job fails
// to open.
//
// A sealed value is one string: SEALED_PREFIX, then base64 of nonce | ciphertext | tag.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync } from 'node:crypto';
import { fillRandom } from '../random-pool.js';

export const PAYLOAD_KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** Marks a sealed value; Bull Board shows any string that starts with it as "[sealed]". */
export const SEALED_PREFIX = 'kfsealed1:';

/** A sealed value could not be opened: altered, sealed for another item (AAD), or under another key. */
export class PayloadSealError extends Error {
  override name = 'PayloadSealError';
}

export const isSealed = (value: unknown): value is string =>
  typeof value === 'string' && value.startsWith(SEALED_PREFIX);

export class PayloadSealer {
  // A private field: no inspect, log or JSON of the sealer shows it. (Not a KeyObject: a cipher made
  // from one cost twice as long, and this runs for every job.)
  readonly #key: Buffer;

  /** Takes a copy of `key`; the caller wipes its own. */
  constructor(key: Uint8Array) {
    if (key.length !== PAYLOAD_KEY_BYTES)
      throw new RangeError(`PayloadSealer: the key must be ${PAYLOAD_KEY_BYTES} bytes`);
    this.#key = Buffer.alloc(PAYLOAD_KEY_BYTES);
    this.#key.set(key);
  }

  /**
   * A keyed hash of `data` for `purpose` (HMAC-SHA256 under a key derived from the payload key): lets a
   * stored request be matched again without storing anything a reader of the database could test guesses on.
   */
  mac(data: string, purpose: string): Buffer {
    const key = Buffer.from(hkdfSync('sha256', this.#key, Buffer.alloc(0), `keyfarm mac ${purpose}`, 32));
    try {
      return createHmac('sha256', key).update(data, 'utf8').digest();
    } finally {
      key.fill(0);
    }
  }

  /** JSON of `value`, sealed for `aad`. */
  seal(value: unknown, aad: string): string {
    const nonce = fillRandom(Buffer.allocUnsafe(NONCE_BYTES));
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = cipher.update(JSON.stringify(value) ?? 'null', 'utf8');
    const sealed = Buffer.concat([nonce, body, cipher.final(), cipher.getAuthTag()]);
    return SEALED_PREFIX + sealed.toString('base64');
  }

  /** The value sealed for `aad`; throws PayloadSealError for anything else. */
  open<T = unknown>(sealed: unknown, aad: string): T {
    if (!isSealed(sealed)) throw new PayloadSealError('not a sealed value');
    const raw = Buffer.from(sealed.slice(SEALED_PREFIX.length), 'base64');
    if (raw.length < NONCE_BYTES + TAG_BYTES) throw new PayloadSealError('sealed value is too short');
    const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, NONCE_BYTES), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    const body = decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES));
    try {
      decipher.final();
    } catch {
      // GCM hands out plaintext before the tag is checked: what failed authentication is wiped unread.
      body.fill(0);
      throw new PayloadSealError('sealed value failed authentication (altered, another item, or another key)');
    }
    return JSON.parse(body.toString('utf8')) as T;
  }
}
