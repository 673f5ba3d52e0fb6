// Redis names of the NIP-46 door, beside the shard names: the announcement channel relay-ingest listens
// on, and the per-event claim that makes one job of a request seen on several relays or ingest replicas.
import type { RedisClient } from '../redis.js';
import type { NostrEvent } from '../nostr/types.js';

/**
 * A bunker began to exist (or changed relays, or bound its client): relay-ingest re-reads its route. An
 * optional event to publish once it is listened for.
 */
export interface BunkerAnnouncement {
  type: 'bunker_added';
  bunkerPubkey: string;
  /** The nostrconnect:// `connect` response, signed by the new bunker, and the client's relays. */
  publish?: { event: NostrEvent; relays: string[] };
}

export function bunkerChannel(prefix: string): string {
  return `${prefix}:nip46:bunkers`;
}

/** Claimed (SET NX with a TTL) by the first ingest to see a request event. */
export function requestClaimKey(prefix: string, eventId: string): string {
  return `${prefix}:nip46:seen:${eventId}`;
}

export async function announceBunker(redis: RedisClient, prefix: string, a: BunkerAnnouncement): Promise<void> {
  await redis.publish(bunkerChannel(prefix), JSON.stringify(a));
}

export function parseAnnouncement(message: string): BunkerAnnouncement | undefined {
  try {
    const a = JSON.parse(message) as BunkerAnnouncement;
    return a?.type === 'bunker_added' && typeof a.bunkerPubkey === 'string' ? a : undefined;
  } catch {
    return undefined;
  }
}

/** A NIP-46 request's user decided on it: one relay-ingest takes it and sends it through again. */
export interface ApprovalDecided {
  type: 'approval_decided';
  approvalId: string;
}

export async function announceApprovalDecided(redis: RedisClient, prefix: string, approvalId: string): Promise<void> {
  const a: ApprovalDecided = { type: 'approval_decided', approvalId };
  await redis.publish(bunkerChannel(prefix), JSON.stringify(a));
}

export function parseApprovalDecided(message: string): ApprovalDecided | undefined {
  try {
    const a = JSON.parse(message) as ApprovalDecided;
    return a?.type === 'approval_decided' && typeof a.approvalId === 'string' && a.approvalId.length <= 64
      ? a
      : undefined;
  } catch {
    return undefined;
  }
}
