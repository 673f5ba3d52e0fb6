// An authorization lets one app act for one user under one policy. It has a bunker key pair of its own
// (sealed like every secret) and a connect secret stored only as a hash.
import { randomUUID } from 'node:crypto';
import type { PoolClient } from 'pg';
import { inTransaction } from '../../database/pool.js';
import {
  findLiveAppAuthorization,
  insertAuthorization,
  lockUserAuthorizations,
  reauthorizeApp,
  revokeAuthorization,
} from '../../database/queries/authorizations.js';
import { findPolicy, type Policy } from '../../database/queries/policies.js';
import { publishEviction, type Eviction } from '../../shared/evictions.js';
import { announceBunker, type BunkerAnnouncement } from '../../shared/nip46/channels.js';
import { waitUntilListening } from '../../shared/nip46/listening.js';
import { metrics } from '../../shared/metrics.js';
import { generateSecretKey } from '../../shared/nostr/keys.js';
import type { ApiContext } from '../context.js';
import { warmAuthorizationKeys } from './key-prefetch.js';
import { badRequest, notFound } from '../errors.js';
import { hashToken, newToken } from './tokens.js';
import { reserveCreation, vetRelays } from './user-relays.js';

export interface CreateAuthorization {
  userId: string;
  applicationName: string;
  policySlug?: string;
  /** The policy, already checked by the caller (a team's authorization may use the team's); else `policySlug`'s. */
  policy?: Policy;
  relays?: string[];
  expiresAt?: Date | null;
  clientId?: string;
  redirectOrigin?: string;
  clientPubkey?: string;
  /**
   * nostrconnect://: builds the `connect` response while the new bunker key is in memory; relay-ingest
   * publishes it once it listens for the bunker.
   */
  connectResponse?: (bunkerSecretKey: Uint8Array, bunkerPubkey: string) => BunkerAnnouncement['publish'];
  /**
   * OAuth: when the user already has a live authorization of this app (clientId and redirectOrigin), update
   * it (policy, new connect secret, no bound client) instead of creating another with another bunker key.
   */
  reuseApp?: boolean;
  /** A team key to sign with instead of the user's own (NULL in the row: the user's key). */
  signingKeyId?: string;
  /**
   * Runs first in the creating transaction: a team authorization checks there, under the team's lock,
   * that its creator is still an admin and the key still the team's.
   */
  checkInTransaction?: (tx: PoolClient) => Promise<void>;
}

export interface CreatedAuthorization {
  authorizationId: string;
  bunkerPubkey: string;
  bunkerUrl: string;
  policy: Policy;
  relays: string[];
  /** An existing authorization of the app was updated rather than a new one created. */
  reused: boolean;
}

export function bunkerUrl(bunkerPubkey: string, relays: string[], secret?: string): string {
  const params = relays.map((r) => `relay=${encodeURIComponent(r)}`);
  if (secret !== undefined) params.push(`secret=${encodeURIComponent(secret)}`);
  return `bunker://${bunkerPubkey}${params.length ? `?${params.join('&')}` : ''}`;
}

/** A policy the user may use: a built-in, or one of their own. */
export async function loadPolicy(ctx: ApiContext, slug: string, userId: string): Promise<Policy> {
  const policy = await findPolicy(ctx.db, slug, userId);
  if (!policy) throw badRequest(`unknown policy: ${slug}`, 'unknown_policy');
  return policy;
}

export async function createAuthorization(ctx: ApiContext, input: CreateAuthorization): Promise<CreatedAuthorization> {
  const policy = input.policy ?? (await loadPolicy(ctx, input.policySlug ?? 'full', input.userId));
  if (input.expiresAt && input.expiresAt.getTime() <= Date.now()) throw badRequest('expires_at is in the past');
  const { relays, userRelays } = await vetRelays(ctx.config, input.relays);
  const authorizationId = randomUUID();
  const secret = newToken('bunker-secret');
  const bunkerSecretKey = generateSecretKey();
  const { clientId, redirectOrigin } = input;
  try {
    const outcome = await inTransaction(ctx.db, async (tx) => {
      await input.checkInTransaction?.(tx);
      if (input.reuseApp && clientId !== undefined && redirectOrigin !== undefined) {
        // Under the user's creation lock, so two exchanges at once cannot both create one.
        await lockUserAuthorizations(tx, input.userId);
        const existing = await findLiveAppAuthorization(tx, input.userId, clientId, redirectOrigin);
        if (existing) {
          await reauthorizeApp(tx, existing.id, policy.slug, hashToken(secret));
          return {
            authorizationId: existing.id,
            bunkerPubkey: existing.bunkerPubkey,
            relays: existing.relays,
            reused: true,
          };
        }
      }
      const key = await ctx.keyStore.create(tx, 'bunker', authorizationId, bunkerSecretKey);
      // Last before the insert: the limits' locks are held until commit.
      await reserveCreation(tx, ctx.config, input.userId, userRelays);
      await insertAuthorization(tx, {
        id: authorizationId,
        userId: input.userId,
        applicationName: input.applicationName,
        policySlug: policy.slug,
        bunkerPubkey: key.pubkey,
        bunkerKeyId: key.keyId,
        secretHash: hashToken(secret),
        clientId,
        redirectOrigin,
        clientPubkey: input.clientPubkey,
        relays,
        expiresAt: input.expiresAt ?? null,
        signingKeyId: input.signingKeyId,
      });
      return { authorizationId, bunkerPubkey: key.pubkey, relays, reused: false };
    });
    const { bunkerPubkey } = outcome;
    // The policy, secret and bound client changed: every cache holding the old ones drops them.
    if (outcome.reused) await evictEverywhere(ctx, { type: 'authorization', authorizationId: outcome.authorizationId });
    // A bunker's client connects next: its keys are loaded meanwhile. (An OAuth app's token does the same.)
    else if (!input.reuseApp) warmAuthorizationKeys(ctx, outcome.authorizationId, { bunker: true });
    const response = outcome.reused ? undefined : input.connectResponse?.(bunkerSecretKey, bunkerPubkey);
    // Only to the relays that passed the checks, in their checked spelling.
    const publish = response && { ...response, relays: outcome.relays };
    // relay-ingest starts listening for the bunker now; its periodic reload covers a lost announcement.
    await announceBunker(ctx.redis, ctx.config.KEY_PREFIX, { type: 'bunker_added', bunkerPubkey, publish }).catch(
      (err: Error) =>
        ctx.logger.warn(
          { err: err.message, authorizationId: outcome.authorizationId },
          'announcing a new bunker failed',
        ),
    );
    // A nostrconnect client learns of the bunker from relay-ingest's response, sent only once it listens.
    if (!outcome.reused && !publish) await untilListened(ctx, bunkerPubkey);
    return {
      authorizationId: outcome.authorizationId,
      bunkerPubkey,
      bunkerUrl: bunkerUrl(bunkerPubkey, outcome.relays, secret),
      policy,
      relays: outcome.relays,
      reused: outcome.reused,
    };
  } finally {
    bunkerSecretKey.fill(0);
  }
}

/**
 * Holds a new bunker's URL back until a relay-ingest listens for it (bounded by BUNKER_LISTEN_WAIT_MS):
 * a client that connects at once would otherwise send a request no relay keeps for later.
 */
async function untilListened(ctx: ApiContext, bunkerPubkey: string): Promise<void> {
  const maxMs = ctx.config.BUNKER_LISTEN_WAIT_MS;
  if (maxMs === 0) return;
  const started = performance.now();
  const outcome = await waitUntilListening(ctx.redis, ctx.config.KEY_PREFIX, bunkerPubkey, maxMs);
  const waitedMs = Math.round(performance.now() - started);
  metrics.bunkerListenWait.inc({ outcome });
  metrics.bunkerListenWaitSeconds.observe(waitedMs / 1000);
  if (outcome === 'timeout' || outcome === 'unknown')
    ctx.logger.warn(
      { bunkerPubkey, waitedMs, outcome },
      'handing out a bunker URL no relay-ingest is known to listen for yet',
    );
}

/** Revokes in Postgres, then broadcasts, so every instance refuses from the moment this returns. */
export async function revoke(
  ctx: ApiContext,
  userId: string,
  by: { id: string } | { bunkerPubkey: string },
): Promise<string> {
  const revoked = await revokeAuthorization(ctx.db, userId, by);
  if (!revoked) throw notFound('no such authorization');
  await evictEverywhere(ctx, { type: 'authorization', authorizationId: revoked.id });
  await evictEverywhere(ctx, { type: 'key', keyId: revoked.bunkerKeyId });
  return revoked.id;
}

/** Evicts here at once, then tells every other api and worker process. */
export async function evictEverywhere(ctx: ApiContext, e: Eviction): Promise<void> {
  ctx.acting.evict(e);
  await publishEviction(ctx.redis, ctx.names.evictChannel(), e);
}
