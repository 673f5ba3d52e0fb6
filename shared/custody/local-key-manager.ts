// KeyManager backed by a master key file (32 random bytes): the embedded default for a laptop or a
// single machine. The file is created with mode 0600 on first start and must stay private afterwards.
import { createCipheriv, createDecipheriv, createHash, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, mkdir, open, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { KeyManager } from './key-manager.js';
import { UnknownKekError, WrappedDekRejectedError } from './errors.js';
import { concatAndWipe } from './wipe.js';

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** The master key file is missing its guarantees (size, permissions, type); the message says how to fix it. */
export class MasterKeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MasterKeyFileError';
  }
}

export class LocalKeyManager implements KeyManager {
  readonly kind = 'local' as const;
  #kek: KeyObject | undefined;

  private constructor(kek: KeyObject, readonly kekId: string, readonly path: string) {
    this.#kek = kek;
  }

  /** Opens the master key file at `file`, creating it (and its directory, 0700) if it does not exist. */
  static async open(file: string): Promise<LocalKeyManager> {
    const raw = (await readMasterKey(file)) ?? (await createMasterKey(file));
    try {
      return new LocalKeyManager(createSecretKey(raw), kekIdOf(raw), file);
    } finally {
      raw.fill(0);
    }
  }

  async wrap(dek: Uint8Array): Promise<Uint8Array> {
    const kek = this.#key();
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', kek, nonce);
    cipher.setAAD(Buffer.from(this.kekId, 'utf8'));
    return Buffer.concat([nonce, cipher.update(dek), cipher.final(), cipher.getAuthTag()]);
  }

  async unwrap(wrapped: Uint8Array, kekId: string): Promise<Uint8Array> {
    const kek = this.#key();
    if (kekId !== this.kekId) {
      throw new UnknownKekError(kekId, `unknown KEK ${kekId}: the master key file ${this.path} is ${this.kekId}`);
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

  async close(): Promise<void> {
    this.#kek = undefined;
  }

  #key(): KeyObject {
    if (!this.#kek) throw new Error(`LocalKeyManager ${this.kekId} is closed`);
    return this.#kek;
  }
}

/** "local:" + 16 hex chars of a domain-separated SHA-256 of the key: identifies the key, reveals nothing of it. */
function kekIdOf(key: Buffer): string {
  const digest = createHash('sha256').update('keyfarm:local-kek-id:v1\0').update(key).digest('hex');
  return `local:${digest.slice(0, 16)}`;
}

/** Reads and checks an existing master key file; undefined when there is none. */
async function readMasterKey(file: string): Promise<Buffer | undefined> {
  let handle;
  try {
    handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new MasterKeyFileError(`master key file ${file} is a symbolic link; point MASTER_KEY_PATH at the file itself`);
    }
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new MasterKeyFileError(`master key file ${file} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new MasterKeyFileError(
        `master key file ${file} is accessible by group or others (mode ${mode}); run: chmod 600 ${file}`,
      );
    }
    if (st.size !== KEY_BYTES) {
      throw new MasterKeyFileError(`master key file ${file} holds ${st.size} bytes, expected exactly ${KEY_BYTES}`);
    }
    const key = Buffer.alloc(KEY_BYTES);
    const { bytesRead } = await handle.read(key, 0, KEY_BYTES, 0);
    if (bytesRead !== KEY_BYTES) {
      key.fill(0);
      throw new MasterKeyFileError(`master key file ${file} could not be read in full`);
    }
    return key;
  } finally {
    await handle.close();
  }
}

/**
 * Creates the master key file. The key is written to a private temporary file and then hard-linked into
 * place, so the file appears complete or not at all; if another process won the race, its key is used.
 */
async function createMasterKey(file: string): Promise<Buffer> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const key = randomBytes(KEY_BYTES);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(key);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, file);
  } catch (err) {
    key.fill(0);
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const existing = await readMasterKey(file);
    if (!existing) throw new MasterKeyFileError(`master key file ${file} vanished while being created`);
    return existing;
  } finally {
    await unlink(tmp);
  }
  return key;
}
