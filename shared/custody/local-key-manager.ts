// KeyManager backed by a master key file (32 random bytes): the embedded default for a laptop or a
// single machine. The file is created with mode 0600 on first start and must stay private afterwards.
//
// KEK rotation: the master key file is the active KEK (new DEKs are wrapped under it); the keyring
// directory beside it (`<file>.keyring/*.key`) holds older or upcoming keys that still unwrap. A running
// process notices a replaced master key file or a changed keyring within `watchIntervalMs`, and looks again
// at once when asked to unwrap under a KEK it does not hold, so `keyfarm rotate-kek` can swap the active
// key and re-wrap rows while every process keeps serving. Keys are only ever added while a process runs.
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import type { KeyManager } from './key-manager.js';
import { UnknownKekError, WrappedDekRejectedError } from './errors.js';
import { concatAndWipe } from './wipe.js';
import {
  createMasterKey,
  kekIdOf,
  keyFilesSignature,
  keyringDirOf,
  readKeyFile,
  readKeyring,
} from './local-key-manager-files.js';

export { MasterKeyFileError } from './local-key-manager-files.js';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export interface LocalKeyManagerOptions {
  /** How often to look for a replaced master key file or a changed keyring, in ms; 0: never. Default 1000. */
  watchIntervalMs?: number;
}

/** The keys read from disk: the active one's id, and every key by id (the active one included). */
interface Loaded {
  activeId: string;
  keys: Map<string, KeyObject>;
}

/** Reads the keyring and takes `active` (wiping every raw key); activeId is '' without an active key. */
async function loadKeys(file: string, active: Buffer | undefined, opts: { skipBad: boolean }): Promise<Loaded> {
  const ring = await readKeyring(keyringDirOf(file), opts);
  try {
    const keys = new Map<string, KeyObject>();
    for (const raw of ring) keys.set(kekIdOf(raw), createSecretKey(raw));
    if (!active) return { activeId: '', keys };
    const activeId = kekIdOf(active);
    keys.set(activeId, createSecretKey(active));
    return { activeId, keys };
  } finally {
    for (const raw of ring) raw.fill(0);
    active?.fill(0);
  }
}

export class LocalKeyManager implements KeyManager {
  readonly kind = 'local' as const;
  readonly keyringDir: string;
  #activeId: string;
  #keys: Map<string, KeyObject> | undefined;
  #signature: string;
  #reloading: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  private constructor(
    loaded: Loaded,
    signature: string,
    readonly path: string,
    watchIntervalMs: number,
  ) {
    this.#activeId = loaded.activeId;
    this.#keys = loaded.keys;
    this.#signature = signature;
    this.keyringDir = keyringDirOf(path);
    if (watchIntervalMs > 0) {
      this.#timer = setInterval(() => void this.refresh(), watchIntervalMs);
      this.#timer.unref();
    }
  }

  /**
   * Opens the master key file at `file`, creating it (and its directory, 0700) if it does not exist, and
   * the keyring beside it. A bad file in either stops the open with a message naming it.
   */
  static async open(file: string, opts: LocalKeyManagerOptions = {}): Promise<LocalKeyManager> {
    const signature = await keyFilesSignature(file);
    const raw = (await readKeyFile(file)) ?? (await createMasterKey(file));
    const loaded = await loadKeys(file, raw, { skipBad: false });
    return new LocalKeyManager(loaded, signature, file, opts.watchIntervalMs ?? 1000);
  }

  /** The active KEK: new DEKs are wrapped under it. */
  get kekId(): string {
    return this.#activeId;
  }

  /** Every KEK id this manager unwraps under, the active one first. */
  get knownKekIds(): string[] {
    return [this.#activeId, ...[...(this.#keys?.keys() ?? [])].filter((id) => id !== this.#activeId)];
  }

  async wrap(dek: Uint8Array): Promise<Uint8Array> {
    // The key and its id are read together, in this tick: a reload cannot come between them.
    const kekId = this.#activeId;
    const kek = this.#key(kekId)!;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', kek, nonce);
    cipher.setAAD(Buffer.from(kekId, 'utf8'));
    return Buffer.concat([nonce, cipher.update(dek), cipher.final(), cipher.getAuthTag()]);
  }

  async unwrap(wrapped: Uint8Array, kekId: string): Promise<Uint8Array> {
    let kek = this.#key(kekId);
    if (!kek) {
      // Perhaps rotation has just installed it: look at the files again before refusing.
      await this.refresh();
      kek = this.#key(kekId);
    }
    if (!kek) {
      throw new UnknownKekError(
        kekId,
        `unknown KEK ${kekId}: the master key file ${this.path} is ${this.#activeId} and its keyring ${this.keyringDir} does not hold it`,
      );
    }
    const buf = Buffer.from(wrapped.buffer, wrapped.byteOffset, wrapped.byteLength);
    if (buf.length < NONCE_BYTES + TAG_BYTES) throw new WrappedDekRejectedError(kekId);
    const decipher = createDecipheriv('aes-256-gcm', kek, buf.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(kekId, 'utf8'));
    decipher.setAuthTag(buf.subarray(buf.length - TAG_BYTES));
    try {
      const dek = decipher.update(buf.subarray(NONCE_BYTES, buf.length - TAG_BYTES));
      try {
        return concatAndWipe([dek, decipher.final()]);
      } finally {
        dek.fill(0);
      }
    } catch (err) {
      throw new WrappedDekRejectedError(kekId, { cause: err });
    }
  }

  /**
   * Reads the master key file and the keyring again if either changed on disk: a new master key becomes
   * the active KEK, new keyring keys become unwrappable, and no key already held is dropped. Unreadable
   * or bad files leave things as they were (the next look tries again). Never throws.
   */
  async refresh(): Promise<void> {
    this.#reloading ??= this.#reload().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #reload(): Promise<void> {
    try {
      const signature = await keyFilesSignature(this.path);
      if (signature === this.#signature || !this.#keys) return;
      const loaded = await loadKeys(this.path, await readKeyFile(this.path), { skipBad: true });
      if (!this.#keys) return;
      for (const [id, key] of loaded.keys) if (!this.#keys.has(id)) this.#keys.set(id, key);
      if (loaded.activeId) this.#activeId = loaded.activeId;
      this.#signature = signature;
    } catch {
      // A file mid-replacement or briefly unreadable: keep serving with what is held.
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#keys = undefined;
  }

  #key(kekId: string): KeyObject | undefined {
    if (!this.#keys) throw new Error(`LocalKeyManager ${this.#activeId} is closed`);
    return this.#keys.get(kekId);
  }
}
