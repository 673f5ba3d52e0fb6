// The first step of a local KEK rotation: making a new master key the active one without stranding any
// row. The current key is copied into the keyring first (so it still unwraps, in this process and every
// other one reading the same files), then the master key file is replaced in one step. Safe to repeat:
// once the new key is active, installing it again changes nothing.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import {
  KEY_BYTES,
  MasterKeyFileError,
  createKeyFile,
  kekIdOf,
  keyringDirOf,
  readKeyFile,
  replaceKeyFile,
} from './local-key-manager-files.js';

export interface InstalledMasterKey {
  /** The KEK that was active before. */
  previousKekId: string;
  /** The KEK that is active now. */
  kekId: string;
  /** False when the new key was already the active one (a rerun). */
  changed: boolean;
  /** Where the previous key is kept for unwrapping. */
  keyringFile?: string;
}

/** The new master key: the contents of a key file, or fresh random bytes. */
export type NewMasterKey = { file: string } | { generate: true };

async function newKeyBytes(source: NewMasterKey): Promise<Buffer> {
  if ('generate' in source) return randomBytes(KEY_BYTES);
  const key = await readKeyFile(source.file);
  if (!key) {
    throw new MasterKeyFileError(
      `no new master key at ${source.file}; make one with: (umask 077; head -c ${KEY_BYTES} /dev/urandom > ${source.file}), or use --generate`,
    );
  }
  return key;
}

export async function installMasterKey(masterKeyPath: string, source: NewMasterKey): Promise<InstalledMasterKey> {
  const current = await readKeyFile(masterKeyPath);
  if (!current)
    throw new MasterKeyFileError(`no master key file at ${masterKeyPath} (MASTER_KEY_PATH): nothing to rotate from`);
  const next = await newKeyBytes(source);
  try {
    const previousKekId = kekIdOf(current);
    const kekId = kekIdOf(next);
    if (kekId === previousKekId) return { previousKekId, kekId, changed: false };
    const keyringFile = path.join(keyringDirOf(masterKeyPath), `${previousKekId.replace(/^local:/, '')}.key`);
    if (!(await createKeyFile(keyringFile, current))) {
      const kept = await readKeyFile(keyringFile);
      const keptId = kept ? kekIdOf(kept) : undefined;
      kept?.fill(0);
      if (keptId !== previousKekId)
        throw new MasterKeyFileError(`keyring file ${keyringFile} exists and holds another key`);
    }
    await replaceKeyFile(masterKeyPath, next);
    return { previousKekId, kekId, changed: true, keyringFile };
  } finally {
    current.fill(0);
    next.fill(0);
  }
}
