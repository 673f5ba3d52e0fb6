// The NIP-46 handler's view of the authorizations table, over the process's Postgres pool.
import type { Db } from '../database/pool.js';
import {
  bindNip46Client,
  findNip46Authorizations,
  revokeNip46Authorization,
  type Nip46Authorization,
} from '../database/queries/nip46.js';
import { takeAuthorizationUse } from '../database/queries/authorization-uses.js';
import type { Nip46Store } from './nip46-processor.js';

export class PostgresNip46Store implements Nip46Store {
  constructor(private readonly db: Db) {}

  findAuthorizations(bunkerPubkeys: string[]): Promise<Nip46Authorization[]> {
    return findNip46Authorizations(this.db, bunkerPubkeys);
  }

  bindClient(authorizationId: string, secretHash: Buffer, clientPubkey: string): Promise<boolean> {
    return bindNip46Client(this.db, authorizationId, secretHash, clientPubkey);
  }

  logout(authorizationId: string, clientPubkey: string): Promise<boolean> {
    return revokeNip46Authorization(this.db, authorizationId, clientPubkey);
  }

  takeUse(authorizationId: string, max: number): Promise<boolean> {
    return takeAuthorizationUse(this.db, authorizationId, max);
  }
}
