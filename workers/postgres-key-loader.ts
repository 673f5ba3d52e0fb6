// Cold key loads for the worker cache: the sealed row from Postgres, opened through the KeyManager.
import type { Db } from '../database/pool.js';
import type { KeyStore } from '../shared/custody/key-store.js';
import type { KeyLoader } from './key-loader.js';

export class PostgresKeyLoader implements KeyLoader {
  constructor(
    private readonly db: Db,
    private readonly keyStore: KeyStore,
  ) {}

  load(keyId: string): Promise<{ secretKey: Uint8Array; pubkey: string }> {
    return this.keyStore.open(this.db, keyId);
  }
}
