// Whether the `connect` response to a pasted nostrconnect:// link reached a relay: relay-ingest records how
// many of the client's relays accepted it, under the new bunker's (public) pubkey, for a few minutes; the
// page that created the link reads it. Counts only: no event, content or secret.
import type { RedisClient } from '../redis.js';

export const CONNECT_RESULT_TTL_S = 600;

export interface ConnectResult {
  /** Relays that answered OK to the response event. */
  accepted: number;
  /** Relays it was sent to. */
  relays: number;
}

export function connectResultKey(prefix: string, bunkerPubkey: string): string {
  return `${prefix}:nip46:connect-result:${bunkerPubkey}`;
}

/** A delivery overwrites; a failure is kept only if nothing is recorded yet (several ingest replicas may try). */
export async function recordConnectResult(
  redis: RedisClient,
  prefix: string,
  bunkerPubkey: string,
  result: ConnectResult,
): Promise<void> {
  const key = connectResultKey(prefix, bunkerPubkey);
  const value = JSON.stringify({ accepted: result.accepted, relays: result.relays });
  if (result.accepted > 0) await redis.set(key, value, 'EX', CONNECT_RESULT_TTL_S);
  else await redis.set(key, value, 'EX', CONNECT_RESULT_TTL_S, 'NX');
}

export async function readConnectResult(
  redis: RedisClient,
  prefix: string,
  bunkerPubkey: string,
): Promise<ConnectResult | undefined> {
  const stored = await redis.get(connectResultKey(prefix, bunkerPubkey));
  if (!stored) return undefined;
  try {
    const r = JSON.parse(stored) as ConnectResult;
    return Number.isInteger(r.accepted) && Number.isInteger(r.relays) ? r : undefined;
  } catch {
    return undefined;
  }
}
