// Key custody: pick the KeyManager the settings ask for, instrumented, plus the envelope functions.
import type { Config } from '../config.js';
import type { KeyManager } from './key-manager.js';
import { GcpKeyManager } from './gcp-key-manager.js';
import { LocalKeyManager } from './local-key-manager.js';
import { instrumentKeyManager } from './instrument.js';

export { KeyManagerUnavailableError, type KeyManager } from './key-manager.js';
export { SecretDecryptionError, UnknownKekError, WrappedDekRejectedError } from './errors.js';
export { ownerAad, sealSecret, openSecret, rewrapSecret, type SealedSecret, type OwnerKind } from './envelope.js';
export { LocalKeyManager, MasterKeyFileError } from './local-key-manager.js';
export { GcpKeyManager, type GcpKeyManagerOptions } from './gcp-key-manager.js';
export { instrumentKeyManager } from './instrument.js';

export type KeyCustodyConfig = Pick<Config, 'GCP_KMS_KEY' | 'GCP_KMS_ENDPOINT' | 'MASTER_KEY_PATH'>;

/** Cloud KMS when GCP_KMS_KEY is set, otherwise the local master key file at MASTER_KEY_PATH. */
export async function createKeyManager(cfg: KeyCustodyConfig): Promise<KeyManager> {
  const km = cfg.GCP_KMS_KEY
    ? new GcpKeyManager({ keyName: cfg.GCP_KMS_KEY, endpoint: cfg.GCP_KMS_ENDPOINT })
    : await LocalKeyManager.open(cfg.MASTER_KEY_PATH);
  return instrumentKeyManager(km);
}
