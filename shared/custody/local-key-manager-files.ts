// The files of the local KeyManager: the master key file (32 random bytes, mode 0600) that wraps new data
// keys, and its keyring directory beside it (`<master key file>.keyring/`), holding older or upcoming
// master keys that still unwrap but never wrap. Every file is checked the same way: a regular file, not a
// link, private to its owner, exactly 32 bytes.
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { type FileHandle, link, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';

export const KEY_BYTES = 32;

/** A key file is missing its guarantees (size, permissions, type); the message says how to fix it. */
export class MasterKeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MasterKeyFileError';
  }
}

/** The directory of extra (unwrap-only) master keys that belongs to a master key file. */
export function keyringDirOf(masterKeyPath: string): string {
  return `${masterKeyPath}.keyring`;
}

/** "local:" + 16 hex chars of a domain-separated SHA-256 of the key: identifies the key, reveals nothing of it. */
export function kekIdOf(key: Buffer): string {
  const digest = createHash('sha256').update('keyfarm:local-kek-id:v1\0').update(key).digest('hex');
  return `local:${digest.slice(0, 16)}`;
}

/** Reads and checks a key file; undefined when there is none. */
export async function readKeyFile(file: string): Promise<Buffer | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new MasterKeyFileError(
        `master key file ${file} is a symbolic link; point MASTER_KEY_PATH at the file itself`,
      );
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

/** The keys of a keyring directory (`*.key` files), none when it does not exist. A bad file throws, or is skipped with `skipBad`. */
export async function readKeyring(dir: string, opts: { skipBad?: boolean } = {}): Promise<Buffer[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.key')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const keys: Buffer[] = [];
  for (const name of names) {
    try {
      const key = await readKeyFile(path.join(dir, name));
      if (key) keys.push(key);
    } catch (err) {
      if (!opts.skipBad) {
        for (const k of keys) k.fill(0);
        throw err;
      }
    }
  }
  return keys;
}

/** Writes `key` to a private temporary file beside `file`, flushed, and returns its path. */
async function writeTemporary(file: string, key: Buffer): Promise<string> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(key);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return tmp;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Creates `file` holding `key`, appearing complete or not at all (written aside, then hard-linked into
 * place). False when the file already exists: it is left as it is.
 */
export async function createKeyFile(file: string, key: Buffer): Promise<boolean> {
  const tmp = await writeTemporary(file, key);
  try {
    await link(tmp, file);
    await syncDir(path.dirname(file));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp);
  }
}

/** Replaces `file` with one holding `key` in one step (rename), so a reader sees the old key or the new one. */
export async function replaceKeyFile(file: string, key: Buffer): Promise<void> {
  const tmp = await writeTemporary(file, key);
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(path.dirname(file));
}

/** Creates the master key file with a new random key; if another process won the race, its key is used. */
export async function createMasterKey(file: string): Promise<Buffer> {
  const key = randomBytes(KEY_BYTES);
  if (await createKeyFile(file, key)) return key;
  key.fill(0);
  const existing = await readKeyFile(file);
  if (!existing) throw new MasterKeyFileError(`master key file ${file} vanished while being created`);
  return existing;
}

/** Changes when the master key file or the keyring directory changes (replaced, added to, removed from). */
export async function keyFilesSignature(masterKeyPath: string): Promise<string> {
  const parts = await Promise.all(
    [masterKeyPath, keyringDirOf(masterKeyPath)].map((p) =>
      stat(p).then(
        (s) => `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`,
        () => 'none',
      ),
    ),
  );
  return parts.join('|');
}

/** The KEK ids the master key file and its keyring hold, creating nothing (for checks before a start). */
export async function localKekIds(masterKeyPath: string): Promise<string[]> {
  const active = await readKeyFile(masterKeyPath).catch(() => undefined);
  const ring = await readKeyring(keyringDirOf(masterKeyPath), { skipBad: true });
  const ids = [active, ...ring]
    .filter((k): k is Buffer => k !== undefined)
    .map((k) => {
      const id = kekIdOf(k);
      k.fill(0);
      return id;
    });
  return [...new Set(ids)];
}
