// Requests to a bunker from any client key but its bound client (strangers, and every client before its
// connect) cost a decrypt, an encrypt and a signature each, and a claim key: they are limited per client
// key at each bunker and per bunker, in Redis so the limits hold across relay-ingest replicas, before
// anything is claimed or queued. The bound client is not limited here (the shard's admission bounds it).
import { readFileSync } from 'node:fs';
import { luaCommand, type RedisClient } from '../shared/redis.js';

const LUA = readFileSync(new URL('./unbound-client-limit.lua', import.meta.url), 'utf8');
const COMMAND = 'keyfarmNip46UnboundLimit';

type LimitCommand = (
  clientKey: string,
  bunkerKey: string,
  clientLimit: number,
  bunkerLimit: number,
  windowSeconds: number,
) => Promise<number>;

export interface UnboundClientLimitOptions {
  keyPrefix: string;
  /** Requests one client key may send to one bunker per window. */
  perClient: number;
  /** Requests one bunker may receive from all unbound client keys per window. */
  perBunker: number;
  windowSeconds?: number;
}

export type UnboundVerdict = 'ok' | 'client_limited' | 'bunker_limited';

export class UnboundClientLimit {
  private readonly command: LimitCommand;
  private readonly windowSeconds: number;

  constructor(
    redis: RedisClient,
    private readonly opts: UnboundClientLimitOptions,
  ) {
    this.windowSeconds = opts.windowSeconds ?? 60;
    this.command = luaCommand<LimitCommand>(redis, COMMAND, 2, LUA);
  }

  /** Counts one request from `clientPubkey` to `bunkerPubkey` (both 64 hex), or says which limit refuses it. */
  async take(bunkerPubkey: string, clientPubkey: string): Promise<UnboundVerdict> {
    // One hash tag per bunker: both counters sit in one cluster slot.
    const bunkerKey = `${this.opts.keyPrefix}:nip46:unbound:{${bunkerPubkey}}`;
    const r = await this.command(
      `${bunkerKey}:${clientPubkey}`,
      bunkerKey,
      this.opts.perClient,
      this.opts.perBunker,
      this.windowSeconds,
    );
    return r === 0 ? 'ok' : r === 1 ? 'client_limited' : 'bunker_limited';
  }
}
