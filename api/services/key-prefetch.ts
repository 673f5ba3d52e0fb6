// The api's side of key prefetch (shared/key-prefetch.ts): a hint for the key of every token this process
// looks up for the first time, and, when a token is issued, that lookup done at once so the session's
// first request finds both its token and its key cached.
import type { ActingAuthorization } from '../../database/queries/authorizations.js';
import { publishKeyPrefetch } from '../../shared/key-prefetch.js';
import type { Logger } from '../../shared/logger.js';
import type { RedisClient } from '../../shared/redis.js';
import { shardOf, type ShardNames } from '../../shared/shard.js';
import type { ApiContext } from '../context.js';
import { hashToken } from './tokens.js';

/** Whether requests can act under this authorization now (a refused one warms nothing). */
function usable(acting: ActingAuthorization): boolean {
  if (acting.revokedAt || acting.tokenRevoked) return false;
  return !acting.expiresAt || acting.expiresAt.getTime() > Date.now();
}

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
 * Looks up a token just issued, in the background: its lookup enters this process's token cache and the
 * lookup's hint warms the key. Never delays or fails the issue.
 */
export function warmIssuedToken(ctx: ApiContext, accessToken: string): void {
  if (ctx.config.KEY_PREFETCH_MAX_INFLIGHT === 0) return;
  ctx.acting.get(hashToken(accessToken)).catch(() => undefined);
}
