// Whether a new bunker can be used yet. NIP-46 requests are ephemeral: a relay hands them only to the
// subscriptions active at that moment, so a client that connects before relay-ingest listens for its
// bunker is never answered. relay-ingest marks a new bunker pubkey once a relay confirmed (EOSE) a
// subscription naming it, and keeps a presence key while it has a relay to listen on; the api waits for
// the mark, bounded, before it hands the bunker URL out. One key per command (any Redis Cluster slot);
// only public pubkeys are stored.
import type { RedisClient } from '../redis.js';

/** A mark outlives any wait for it; a pubkey is marked again whenever it is announced. */
export const LISTENING_MARK_TTL_S = 60;

/** relay-ingest renews its presence this often; it lapses after LISTENER_PRESENCE_TTL_MS without one. */
export const LISTENER_HEARTBEAT_MS = 1000;
export const LISTENER_PRESENCE_TTL_MS = 3500;

/** Polls for the mark start this far apart and grow to the maximum. */
const FIRST_POLL_MS = 5;
const MAX_POLL_MS = 50;

export function listeningKey(prefix: string, bunkerPubkey: string): string {
  return `${prefix}:nip46:listening:${bunkerPubkey}`;
}

/** Present while some relay-ingest has a relay connected, so a wait for its mark can end. */
export function listenerPresenceKey(prefix: string): string {
  return `${prefix}:nip46:listener`;
}

export async function markListening(redis: RedisClient, prefix: string, bunkerPubkey: string): Promise<void> {
  await redis.set(listeningKey(prefix, bunkerPubkey), '1', 'EX', LISTENING_MARK_TTL_S);
}

export async function renewListenerPresence(redis: RedisClient, prefix: string): Promise<void> {
  await redis.set(listenerPresenceKey(prefix), '1', 'PX', LISTENER_PRESENCE_TTL_MS);
}

/**
 * - listening: a relay-ingest listens for the bunker.
 * - no_listener: no relay-ingest with a relay is alive, so none would mark it (an api-only deployment).
 * - timeout: not marked within the bound.
 * - unknown: Redis did not answer.
 */
export type ListeningOutcome = 'listening' | 'no_listener' | 'timeout' | 'unknown';

/** Waits up to `maxMs` for relay-ingest's mark on `bunkerPubkey`; never throws. */
export async function waitUntilListening(
  redis: RedisClient,
  prefix: string,
  bunkerPubkey: string,
  maxMs: number,
): Promise<ListeningOutcome> {
  const key = listeningKey(prefix, bunkerPubkey);
  const deadline = Date.now() + maxMs;
  try {
    const [marked, present] = await Promise.all([redis.exists(key), redis.exists(listenerPresenceKey(prefix))]);
    if (marked) return 'listening';
    if (!present) return 'no_listener';
    for (let pause = FIRST_POLL_MS; ; pause = Math.min(pause * 2, MAX_POLL_MS)) {
      const left = deadline - Date.now();
      if (left <= 0) return 'timeout';
      await new Promise((r) => setTimeout(r, Math.min(pause, left)));
      if (await redis.exists(key)) return 'listening';
    }
  } catch {
    return 'unknown';
  }
}
