// The api's side of key prefetch (shared/key-prefetch.ts): a hint for the key of every token this process
// looks up for the first time, of every authorization a token is issued for, and of every new bunker
// (its own key and the key it signs with: its client's `connect` and first requests need both).
import type { ActingAuthorization } from '../../database/queries/authorizations.js';
import { publishKeyPrefetch } from '../../shared/key-prefetch.js';
import type { Logger } from '../../shared/logger.js';
import type { RedisClient } from '../../shared/redis.js';
import { shardOf, type ShardNames } from '../../shared/shard.js';
import type { ApiContext } from '../context.js';

/** Whether requests can act under this authorization now (a refused one warms nothing). */
function usable(acting: ActingAuthorization): boolean {
  if (acting.revokedAt || acting.tokenRevoked) return false;
  return !acting.expiresAt || acting.expiresAt.getTime() > Date.now();
}

/** The key an authorization signs with, its bunker's key, and the shard its requests go to. */
const AUTHORIZATION_KEYS = {
  name: 'keyfarm-authorization-keys',
  text: `SELECT a.bunker_key_id AS "bunkerKeyId", COALESCE(a.signing_key_id, u.key_id) AS "keyId",
      COALESCE(sk.pubkey, u.pubkey) AS pubkey
    FROM authorizations a JOIN users u ON u.id = a.user_id LEFT JOIN keys sk ON sk.id = a.signing_key_id
    WHERE a.id = $1 AND a.revoked_at IS NULL`,
};

/** What the token cache calls on a token's first lookup: hints its signing key to the shard's worker. */
export function keyPrefetchHinter(
  redis: RedisClient,
  names: ShardNames,
  shardCount: number,
  logger: Logger,
): (acting: ActingAuthorization) => void {
  const channel = names.keyPrefetchChannel();
  return (acting) => {
    if (!usable(acting)) return;
    const hint = { keyId: acting.userKeyId, shard: shardOf(acting.userPubkey, shardCount) };
    publishKeyPrefetch(redis, channel, hint).catch((err: Error) =>
      logger.debug({ err: err.message, authorizationId: acting.id }, 'key prefetch hint not sent'),
    );
  };
}

/**
 * Hints, in the background, the key an authorization signs with (a token was just issued for it) and,
 * for a bunker just created, the bunker's own key too (its client's `connect` needs it). The key ids are
 * read from PostgreSQL; the request names none. Never delays or fails what called it.
 */
export function warmAuthorizationKeys(ctx: ApiContext, authorizationId: string, { bunker = false } = {}): void {
  if (ctx.config.KEY_PREFETCH_MAX_INFLIGHT === 0) return;
  const channel = ctx.names.keyPrefetchChannel();
  ctx.db
    .query<{ bunkerKeyId: string; keyId: string; pubkey: string }>({ ...AUTHORIZATION_KEYS, values: [authorizationId] })
    .then(async ({ rows }) => {
      const row = rows[0];
      if (!row) return;
      const shard = shardOf(row.pubkey, ctx.config.SHARD_COUNT);
      if (bunker) await publishKeyPrefetch(ctx.redis, channel, { keyId: row.bunkerKeyId, shard });
      await publishKeyPrefetch(ctx.redis, channel, { keyId: row.keyId, shard });
    })
    .catch((err: Error) => ctx.logger.debug({ err: err.message, authorizationId }, 'key prefetch hint not sent'));
}
